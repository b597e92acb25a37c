"""Stop signals of long commands: recorded, never forced on a caller that ignores them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from lsci.cli.stop_signals import STOP_SIGNALS, Stopped, already_stopping, stop_requests


@pytest.fixture
def from_a_terminal() -> Iterator[None]:
    """The stop signals as a program started from a terminal has them (a test run started in
    the background has SIGINT ignored); put back afterwards."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_an_ignored_signal_stays_ignored_and_the_others_stop(from_a_terminal: None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts a program
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    repeats: list[int] = []
    with stop_requests(repeats.append) as stops:
        assert stops.signals == {signal.SIGINT, signal.SIGTERM}
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing recorded
        stops.check()
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, acted on at the next check
        assert stops.name == "SIGTERM"
        with pytest.raises(Stopped, match="stopped by SIGTERM"):
            stops.check()
    assert repeats == []
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


def test_a_repeated_signal_goes_to_the_callers_handler(from_a_terminal: None) -> None:
    repeats: list[int] = []
    with stop_requests(repeats.append) as stops:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
    assert stops.signum == signal.SIGINT
    assert repeats == [signal.SIGHUP, signal.SIGTERM]


def test_a_burst_of_signals_while_stopping_gets_one_line(
    from_a_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with stop_requests(already_stopping("the recording is being closed")):
        for _ in range(20):
            os.kill(os.getpid(), signal.SIGTERM)
    err = capsys.readouterr().err
    assert err.strip() == "SIGTERM: already stopping; the recording is being closed"


def test_at_once_the_first_signal_stops_where_the_main_thread_is(from_a_terminal: None) -> None:
    repeats: list[int] = []
    with stop_requests(on_repeat=repeats.append, at_once=True) as stops:
        with pytest.raises(Stopped, match="stopped by SIGHUP"):
            os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)  # while cleaning up: reported, not raised
    assert stops.signum == signal.SIGHUP
    assert repeats == [signal.SIGTERM]
