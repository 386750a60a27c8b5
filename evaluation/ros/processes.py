"""The node processes of a closed-loop run: `sim_robot_node` and `policy_node`, each
started through its own `main()` in a child process exactly as `ros2 run` starts it,
with its log in a file; and the check that DDS stays on this machine.

No rclpy here: the children open DDS, this module only starts, watches and stops them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ros2_ws" / "src" / "df_policy"
SIM_NODE = "sim_robot"  # the nodes' default names (their services live under them)
POLICY_NODE = "policy_node"
SIM_NODE_MODULE = "df_policy.sim_robot_node"
POLICY_NODE_MODULE = "df_policy.policy_node"


class PrivateNetworkError(RuntimeError):
    """DDS would be opened outside a private network namespace."""


class ClosedLoopError(RuntimeError):
    """A node failed to start, died, or stopped answering; the message says which and why."""


def require_private_network() -> None:
    """Refuse unless this process's network namespace has nothing but loopback (the
    namespace scripts/in_netns.sh creates), so no DDS packet can leave the machine."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    if names != ["lo"]:
        raise PrivateNetworkError(
            f"refusing to open DDS: this process sees the network interfaces {names}, not only 'lo'. "
            "Run it inside a private network namespace, e.g.\n"
            "  scripts/in_netns.sh .venv/bin/python -m dfstack.ros_closed_loop --checkpoint DIR ..."
        )


def import_node_package() -> None:
    """Make `df_policy` (the nodes' package, from its source tree) importable here."""
    if str(PACKAGE) not in sys.path:
        sys.path.insert(0, str(PACKAGE))


def _ros_argument(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_ros_argument(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def node_command(module: str, parameters: Mapping[str, Any]) -> list[str]:
    """The command line that runs the node `module` with `parameters` (`--ros-args -p`)."""
    command = [sys.executable, "-m", module, "--ros-args"]
    for name, value in parameters.items():
        command += ["-p", f"{name}:={_ros_argument(value)}"]
    return command


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the parent dies, so a killed
    evaluation leaves no node running (rclpy shuts down cleanly on SIGTERM)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class NodeProcesses:
    """Node processes started by this process, by name, each logging to `log_dir/<name>.log`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, module: str, parameters: Mapping[str, Any]) -> None:
        """Start the node `module` as `name` with `parameters`, its package importable and
        DDS discovery kept on this machine."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), str(PACKAGE), os.environ.get("PYTHONPATH", "")) if p),
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        self.logs[name] = log
        with log.open("w") as out:
            # start_new_session: a Ctrl-C in the terminal reaches this process only;
            # stop() then stops the nodes in order with SIGINT (their clean shutdown).
            self.processes[name] = subprocess.Popen(
                node_command(module, parameters),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    def check_alive(self) -> None:
        """ClosedLoopError, with the end of its log, if a node has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ClosedLoopError(f"{name} exited with code {process.returncode}" + self.log_tails(name))

    def log_tails(self, only: str | None = None, lines: int = 15) -> str:
        """The last `lines` of each node's log (or only of `only`), for error messages."""
        parts = []
        for name, path in self.logs.items():
            if only is not None and name != only:
                continue
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"\n--- last lines of {path} ---\n" + "\n".join(tail))
        return "".join(parts)

    def stop(self) -> None:
        """Stop the nodes (SIGINT: their own clean shutdown; SIGKILL if they hang)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=15.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5.0)
