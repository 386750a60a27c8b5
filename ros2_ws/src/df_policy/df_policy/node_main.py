"""Spin a node until Ctrl-C, SIGTERM, an external shutdown or its own stop request, then
take it down.

Every node's main() ends the same way; the shutdown is bounded so that a thread pool
whose workers sit in a long callback cannot keep the process alive after Ctrl-C.

Ctrl-C and SIGTERM only set a flag that the spin loop reads. The default handler raises
KeyboardInterrupt at whatever bytecode the main thread is running; when that is inside a
`with lock:` of the executor's thread pool (between acquiring the lock and entering the
block) the lock is never released, the pool's workers block on it for ever, and the
interpreter hangs at exit joining them (seen about 1 run in 6 with the "multi" executor).
A second Ctrl-C restores the default handler's behaviour, so an impatient user still
gets out.
"""

from __future__ import annotations

import faulthandler
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_requested_by_signal() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM while the block runs; a repeated signal raises
    KeyboardInterrupt as usual. Outside the main thread (where Python cannot install
    handlers) the event is never set and the handlers already installed stay."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(signum: int, frame: Any) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


STALL_EXIT_CODE = 1  # faulthandler's: the process ends with _exit(1) after dumping every thread's stack


class StallWatchdog:
    """Ends the process when the spin loop stops coming round: the executor is stuck
    inside the middleware or a callback (a huge sample from another DDS once held Fast DDS
    for minutes, the node deaf to Ctrl-C). It is Python's faulthandler watchdog, a C thread
    that needs neither the GIL nor the main thread: after `timeout_s` without `feed()` it
    dumps every thread's stack to stderr and exits with STALL_EXIT_CODE, so that commands
    stop for certain and launch can respawn the node (`respawn=True`)."""

    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"the stall timeout must be > 0 s, got {timeout_s}")
        self.timeout_s = timeout_s

    def feed(self) -> None:
        faulthandler.dump_traceback_later(self.timeout_s, repeat=False, exit=True)

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()


def spin_until_shutdown(
    node: Node,
    executor: Any,
    should_stop: Callable[[], bool] = lambda: False,
    on_stop: Callable[[], None] = lambda: None,
    stall_timeout_s: float = 0.0,
) -> None:
    """Spin `node` on `executor`; on the way out call `on_stop` (the node's own threads),
    shut the executor down without waiting for ever, destroy the node, shut rclpy down.
    With `stall_timeout_s` > 0 the process exits (STALL_EXIT_CODE) when one turn of the
    spin loop takes longer than that (StallWatchdog)."""
    executor.add_node(node)
    watchdog = StallWatchdog(stall_timeout_s) if stall_timeout_s > 0 else None
    with stop_requested_by_signal() as signalled:
        try:
            while rclpy.ok() and not signalled.is_set() and not should_stop():
                if watchdog is not None:
                    watchdog.feed()
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            if watchdog is not None:
                watchdog.stop()
            on_stop()
            executor.shutdown(timeout_sec=2.0)
            node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
