"""A node whose executor is stuck (inside the middleware, or a callback that never returns)
does not hang for ever: the stall watchdog ends the process with its exit code and every
thread's stack, so launch can respawn it. A node that keeps spinning is never touched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros]

pytest.importorskip("rclpy")

from df_policy.node_main import STALL_EXIT_CODE  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "df_policy"

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from df_policy.node_main import spin_until_shutdown

    stuck = sys.argv[1] == "stuck"
    rclpy.init()
    node = rclpy.create_node("stalling")
    ticks = []

    def on_timer():
        ticks.append(1)
        if stuck and len(ticks) == 3:
            while True:  # a callback that never returns: the executor is stuck in it
                time.sleep(0.05)

    node.create_timer(0.05, on_timer)
    spin_until_shutdown(node, SingleThreadedExecutor(), should_stop=lambda: len(ticks) >= 20, stall_timeout_s=1.0)
    print("stopped normally", flush=True)
    """
)


def run(mode: str) -> subprocess.CompletedProcess:
    # Generous: the watchdog acts 1 s after the stall; the limit only ends a hung test.
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], cwd=PACKAGE, capture_output=True, text=True, timeout=120
    )


def test_a_stuck_executor_ends_the_process_with_the_stall_exit_code_and_the_stacks() -> None:
    result = run("stuck")
    assert result.returncode == STALL_EXIT_CODE, result.stderr[-2000:]
    assert "stopped normally" not in result.stdout
    assert "Timeout" in result.stderr and "on_timer" in result.stderr  # where it was stuck


def test_a_node_that_keeps_spinning_is_left_alone() -> None:
    result = run("spinning")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stopped normally" in result.stdout
