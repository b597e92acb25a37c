"""Python child processes that take stop signals as a program started from a terminal does.

A non-interactive shell starts background commands with SIGINT ignored (POSIX), and make and
pytest pass that on to the tests' children. lsci, as Unix programs do, leaves a stop signal it
was started with ignored ignored; so a child that is to be stopped by a signal first sets
SIGINT, SIGTERM and SIGHUP to what a terminal gives it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import pytest

_AS_FROM_A_TERMINAL = (
    "import signal\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGHUP, signal.SIG_DFL)\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])\n"
)

#: The ``lsci`` command, for a child process; its arguments follow.
LSCI_CODE = "from lsci.cli import main; main()"


def python_child(code: str) -> list[str]:
    """The command that runs ``code`` in a new Python with stop signals at their defaults."""
    return [sys.executable, "-c", _AS_FROM_A_TERMINAL + code]


#: ``lsci`` as started from a terminal.
LSCI = python_child(LSCI_CODE)


def read_until(lines: Iterable[str], start: str, awaited: str) -> list[str]:
    """The lines of a child's output up to the first that begins with ``start``; the test
    fails, showing them, if the output ends first (``awaited`` says what never came)."""
    seen = []
    for line in lines:
        seen.append(line)
        if line.startswith(start):
            return seen
    pytest.fail(f"{awaited}:\n" + "".join(seen))
