"""The lsci version, in one place (read by packaging and by ``lsci --version``)."""

__version__ = "0.1.0"
