"""lsci recordings: one HDF5 file per acquisition (see docs/format.md)."""
