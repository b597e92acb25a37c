"""Numba kernels, one module per topic, private to lsci.

The public functions that wrap them (validation, dtype rules, output allocation) live in the
topic modules (:mod:`lsci.contrast`, ...). Kernels are compiled with ``cache=True``; none calls
``numba.get_num_threads()`` inside itself, because numba refuses to cache such a kernel.
"""
