"""Tests of the napari plugin (napari_lsci) and ``lsci view``."""
