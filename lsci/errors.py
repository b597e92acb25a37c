"""The lsci exception hierarchy.

Every error lsci raises on purpose derives from :class:`LsciError`, so a caller (the command
line, the napari plugin) can catch lsci's own errors and show their message as it is. Messages
name the problem and what to do about it. Invalid user parameters raise :class:`ValueError` or
:class:`TypeError` (as NumPy and scikit-image do), not these.
"""


class LsciError(Exception):
    """Base class of the errors lsci raises on purpose."""
