"""Stop signals of long commands: SIGINT (Ctrl-C), SIGTERM and SIGHUP end a run cleanly.

A signal only records itself, and the command stops at its next safe point: raising from a
signal handler at an arbitrary point could land inside an HDF5 callback, which would swallow
it, or leave a file half closed. (A command without such points, the demo, asks for the first
signal to raise at once, as Ctrl-C does in any Python program, and cleans up on any exception.)

A stop signal the command was started with ignored stays ignored, as the Unix convention
wants: ``nohup lsci process DIR &`` goes on when the terminal closes (SIGHUP ignored), and a
background job of a shell script (started with SIGINT ignored) is not stopped by a Ctrl-C
meant for the script.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

import click

#: Signals that stop a run as Ctrl-C does. SIGHUP comes when the terminal or the SSH session
#: closes.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """The run was stopped by a signal (a BaseException, like KeyboardInterrupt, so that no
    handler of ordinary errors swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class StoppedError(click.ClickException):
    """The message of a stopped run, with the conventional status 128 + signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # type: ignore[misc]


class StopRequests:
    """The stop signal received, if any; ``on_repeat`` is called for every further one."""

    def __init__(self, on_repeat: Callable[[int], None], *, at_once: bool = False) -> None:
        self.signum: int | None = None
        #: The signals that stop the run (those not ignored when it started).
        self.signals: frozenset[int] = frozenset()
        self._on_repeat = on_repeat
        self._at_once = at_once

    @property
    def name(self) -> str | None:
        """The received signal's name (``"SIGTERM"``), or None."""
        return None if self.signum is None else signal.Signals(self.signum).name

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            if self._at_once:
                raise Stopped(signum)
        else:
            self._on_repeat(signum)

    def check(self) -> None:
        """Raise :class:`Stopped` if a signal came."""
        if self.signum is not None:
            raise Stopped(self.signum)


#: What a command that records is doing once it stops.
CLOSING_THE_RECORDING = "the recording is being closed"


def already_stopping(doing: str) -> Callable[[int], None]:
    """What a repeated signal does while the run cleans up: it says so (``doing``) and lets
    the cleanup finish. Interrupting it would leave a recording half closed, or the unfinished
    product set (or, with ``--overwrite``, the set it replaces) half removed."""

    said: list[int] = []

    def notice(signum: int) -> None:
        if not said:  # once: a burst of signals gets one line
            said.append(signum)
            click.echo(f"\n{signal.Signals(signum).name}: already stopping; {doing}", err=True)

    return notice


@contextlib.contextmanager
def stop_requests(
    on_repeat: Callable[[int], None], *, at_once: bool = False
) -> Iterator[StopRequests]:
    """Record the stop signals that are not ignored, until the block ends.

    With ``at_once``, the first signal raises :class:`Stopped` wherever the main thread is,
    as Ctrl-C raises KeyboardInterrupt: for a command whose engine has no safe points to check
    (the demo), and which cleans up on any exception.
    """
    requests = StopRequests(on_repeat, at_once=at_once)
    previous = {
        signum: signal.signal(signum, requests.handle)
        for signum in STOP_SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    requests.signals = frozenset(previous)
    try:
        yield requests
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
