"""napari plugin for lsci recordings and perfusion maps."""
