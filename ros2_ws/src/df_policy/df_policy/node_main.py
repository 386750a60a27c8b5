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


def spin_until_shutdown(
    node: Node,
    executor: Any,
    should_stop: Callable[[], bool] = lambda: False,
    on_stop: Callable[[], None] = lambda: None,
) -> None:
    """Spin `node` on `executor`; on the way out call `on_stop` (the node's own threads),
    shut the executor down without waiting for ever, destroy the node, shut rclpy down."""
    executor.add_node(node)
    with stop_requested_by_signal() as signalled:
        try:
            while rclpy.ok() and not signalled.is_set() and not should_stop():
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            on_stop()
            executor.shutdown(timeout_sec=2.0)
            node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
