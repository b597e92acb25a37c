"""Camera drivers for lsci: one abstract camera interface, a GenICam driver and a simulator."""
