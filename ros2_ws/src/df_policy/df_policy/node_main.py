"""Spin a node until Ctrl-C, an external shutdown or its own stop request, then take it down.

Every node's main() ends the same way; the shutdown is bounded so that a thread pool
whose workers sit in a long callback cannot keep the process alive after Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_until_shutdown(
    node: Node,
    executor: Any,
    should_stop: Callable[[], bool] = lambda: False,
    on_stop: Callable[[], None] = lambda: None,
) -> None:
    """Spin `node` on `executor`; on the way out call `on_stop` (the node's own threads),
    shut the executor down without waiting for ever, destroy the node, shut rclpy down."""
    executor.add_node(node)
    try:
        while rclpy.ok() and not should_stop():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        on_stop()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
