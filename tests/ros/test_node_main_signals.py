"""Ctrl-C while a node spins sets a flag instead of raising into whatever the main thread
was doing (a KeyboardInterrupt inside the executor's thread-pool locks hung the process)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

pytestmark = [pytest.mark.ros]

pytest.importorskip("rclpy")

from df_policy.node_main import stop_requested_by_signal  # noqa: E402


def _wait(event: threading.Event) -> bool:
    # The Python-level handler runs between bytecodes of the main thread, so poll briefly.
    deadline = time.monotonic() + 2.0
    while not event.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    return event.is_set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_sets_the_flag_second_interrupts_and_handlers_come_back(signum: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt), stop_requested_by_signal() as requested:
        assert not requested.is_set()
        os.kill(os.getpid(), signum)
        assert _wait(requested), "the first signal must set the stop flag"
        os.kill(os.getpid(), signum)
        time.sleep(1.0)  # the second signal raises here
        pytest.fail("a second signal must raise KeyboardInterrupt")
    assert signal.getsignal(signum) is before


def test_outside_the_main_thread_handlers_are_left_alone() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[object] = []

    def worker() -> None:
        with stop_requested_by_signal() as requested:
            seen.append(signal.getsignal(signal.SIGINT))
            seen.append(requested.is_set())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before, False]
