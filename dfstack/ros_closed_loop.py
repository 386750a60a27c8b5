"""Closed-loop evaluation through the ROS 2 nodes: `sim_robot_node` (the simulated FR3)
and `policy_node` (the DF policy), each started through its own `main()` in a child
process exactly as `ros2 run` starts it, talking Fast DDS over loopback.

This process only watches and drives, through the nodes' public interfaces:
- per episode it sets the sim node's `seed` and `fault_plan` parameters, calls
  `/sim_robot/reset_episode` and `/policy_node/reset`, enables the policy
  (`/policy_node/enable`), polls `/sim_robot/report_success` every `poll_s` until
  success or the time limit (sim time), then disables the policy;
- it audits every command on `/target_pose` and the gripper topic with
  `policy.commanding.audit_command`, independently of the node's own safety filter;
- it reads each camera's noise level k from `/diagnostics`, and for the episodes chosen
  for a video it keeps the camera frames, the frames the model predicted
  (`/policy_node/debug_image`) and the noise levels, tick by tick.

The policy node runs on wall-clock time and stamps nothing itself; the simulated
robot stamps its messages with "ROS time at the episode start + sim time". The two
agree only at `real_time_factor` 1.0, the default (see `--help` of the CLI).

DDS must stay on this machine: everything runs inside a private network namespace
(`scripts/in_netns.sh`), and `run_ros_episodes` refuses to start anywhere else.

rclpy is imported only when DDS is opened, so `import dfstack.ros_closed_loop` (and the
report writer that uses its result types) works without ROS.

    scripts/in_netns.sh .venv/bin/python -m dfstack.ros_closed_loop \\
        --checkpoint outputs/swap_fruit-df/checkpoints/best --episodes 10 --report-dir reports/ros_eval
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfstack.evaluate_sim import (
    DEFAULT_EVAL_SEED,
    DEFAULT_MAX_STEPS,
    FAULT_PLAN_CHOICES,
    EvalSettings,
    check_fits_simulator,
    fault_plan_for,
    success_summary,
    wilson_interval,
)
from sim.faults import FaultPlan

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ros2_ws" / "src" / "df_policy"
SIM_NODE = "sim_robot"  # the nodes' default names (their services live under them)
POLICY_NODE = "policy_node"
STEP_S = 0.1  # one simulator step (the action period of every swap-fruit policy)


class PrivateNetworkError(RuntimeError):
    """DDS would be opened outside a private network namespace."""


class ClosedLoopError(RuntimeError):
    """A node failed to start, died, or stopped answering; the message says which and why."""


# --------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class NamedFaults:
    """A fault plan drawn afresh for each episode from its seed by dfstack.evaluate_sim's
    builder (`fault_plan_for`), restricted to `cameras`: the same named plan on the same
    seed gives the same faults in evaluate-sim and here. `events`/`span_s` left as None
    take evaluate-sim's defaults."""

    name: str
    cameras: tuple[str, ...] | None = None  # None: every camera of the policy
    events: int | None = None
    span_s: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.name not in FAULT_PLAN_CHOICES:
            raise ValueError(f"unknown fault plan {self.name!r}; choose from {list(FAULT_PLAN_CHOICES)}")

    def plan(self, seed: int, max_steps: int, cameras: tuple[str, ...]) -> FaultPlan:
        settings = EvalSettings(episodes=1, fault_plan=self.name, max_steps=max_steps)
        if self.events is not None:
            settings.fault_events = self.events
        if self.span_s is not None:
            settings.fault_span_s = self.span_s
        return fault_plan_for(settings, seed, self.cameras or cameras)


# The demo's "occluded" condition: the paper's robustness test, as `make bench-paper`
# runs it (sim.faults.FaultPlan.occlusion_test): the front camera fully covered (black
# frames) for two 1.5-3 s spans while the task is under way, and a distractor object.
OCCLUDED_FRONT = NamedFaults("paper", cameras=("front",))
BUILTIN_CONDITIONS: dict[str, NamedFaults | None] = {"clean": None, "occluded": OCCLUDED_FRONT}
DEFAULT_CONDITIONS: tuple[str, ...] = ("clean", "occluded")

# What a condition may be: None (no faults); a name ("clean", "occluded", or one of
# evaluate-sim's FAULT_PLAN_CHOICES, drawn over every camera); a path to a FaultPlan JSON
# file or a FaultPlan (the same plan every episode); NamedFaults; or a function of the
# episode seed returning a FaultPlan or None.
ConditionSpec = None | str | Path | FaultPlan | NamedFaults | Callable[[int], FaultPlan | None]


def condition_plan(spec: ConditionSpec, seed: int, max_steps: int, cameras: tuple[str, ...]) -> FaultPlan | None:
    """The fault plan of one episode of a condition (None: no faults)."""
    if spec is None:
        return None
    if isinstance(spec, FaultPlan):
        return spec
    if isinstance(spec, NamedFaults):
        return spec.plan(seed, max_steps, cameras)
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text in BUILTIN_CONDITIONS:
            return condition_plan(BUILTIN_CONDITIONS[text], seed, max_steps, cameras)
        if text == "none":
            return None
        if text in FAULT_PLAN_CHOICES:
            return NamedFaults(text).plan(seed, max_steps, cameras)
        if Path(text).is_file():
            return FaultPlan.from_json(Path(text).read_text())
        raise ValueError(
            f"condition {text!r} is neither {sorted(BUILTIN_CONDITIONS)}, one of {list(FAULT_PLAN_CHOICES)}, "
            "nor a FaultPlan JSON file"
        )
    if callable(spec):
        plan = spec(seed)
        if plan is not None and not isinstance(plan, FaultPlan):
            raise TypeError(f"a condition function must return a FaultPlan or None, got {type(plan).__name__}")
        return plan
    raise TypeError(f"cannot make a fault plan from {type(spec).__name__}")


# ----------------------------------------------------------------------- results


@dataclass
class CameraFrame:
    time_s: float  # arrival, seconds since the episode's reset
    image: np.ndarray  # HxWx3 uint8 as the camera published it


@dataclass
class TickRecord:
    """One policy tick as seen from outside the node."""

    time_s: float  # arrival of its debug image, seconds since the episode's reset
    levels: dict[str, int]  # noise level k per camera (from /diagnostics); -1 = not known
    issues: dict[str, str]  # frame-health issues per camera, comma separated ("" = none)
    seen: dict[str, np.ndarray]  # the frame the policy used (debug image, left half)
    predicted: dict[str, np.ndarray]  # the frame the model predicted (debug image, right half)


@dataclass
class EpisodeTrace:
    """Everything a video of one episode needs."""

    condition: str
    seed: int
    success: bool
    time_to_success_s: float | None
    max_level: int  # K
    cameras: tuple[str, ...]
    frames: dict[str, list[CameraFrame]] = field(default_factory=dict)
    ticks: list[TickRecord] = field(default_factory=list)


@dataclass
class EpisodeOutcome:
    condition: str
    index: int
    seed: int
    success: bool
    time_to_success_s: float | None  # sim time of the first report that showed success (if scored a success)
    sim_time_s: float  # sim time when the episode ended
    wall_s: float
    ended_by: str  # success | time_limit | wall_limit
    ticks: int  # policy ticks seen in /diagnostics while enabled
    ticks_with_noise: int  # ... where some camera had k > 0
    ticks_with_noise_per_camera: dict[str, int]
    ticks_unusable_per_camera: dict[str, int]  # ... at k = K
    max_level_per_camera: dict[str, int]
    commands: int  # pose commands audited
    unsafe_commands: int
    gripper_commands: int
    unsafe_gripper_commands: int
    unsafe_examples: list[str]
    watchdog_stops: int  # commander counters over the episode (from /diagnostics)
    dropped_actions: int
    adjusted_commands: int
    rejected_commands: int
    fault_plan: dict[str, Any] | None
    episode_info: dict[str, Any]
    report: dict[str, Any]
    trace: EpisodeTrace | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("trace")
        return data


@dataclass
class ConditionResult:
    name: str
    description: str
    episodes: list[EpisodeOutcome] = field(default_factory=list)

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, len(self.episodes))

    @property
    def confidence_interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, len(self.episodes))

    def summary(self) -> dict[str, Any]:
        times = [e.time_to_success_s for e in self.episodes if e.time_to_success_s is not None]
        return {
            "condition": self.name,
            "description": self.description,
            **success_summary(self.successes, len(self.episodes)),
            "mean_time_to_success_s": float(np.mean(times)) if times else None,
            "ticks": sum(e.ticks for e in self.episodes),
            "ticks_with_noise": sum(e.ticks_with_noise for e in self.episodes),
            "commands": sum(e.commands + e.gripper_commands for e in self.episodes),
            "unsafe_commands": sum(e.unsafe_commands + e.unsafe_gripper_commands for e in self.episodes),
            "watchdog_stops": sum(e.watchdog_stops for e in self.episodes),
        }


@dataclass
class ClosedLoopResults:
    checkpoint: str
    cameras: tuple[str, ...]
    max_level: int  # K of the policy
    settings: dict[str, Any]
    conditions: dict[str, ConditionResult]
    seconds: float = 0.0
    traces: dict[str, list[EpisodeTrace]] = field(default_factory=dict)  # condition -> video episodes

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "cameras": list(self.cameras),
            "max_noise_level": self.max_level,
            "seconds": round(self.seconds, 1),
            "settings": self.settings,
            "summary": {name: c.summary() for name, c in self.conditions.items()},
            "video_episodes": {name: [t.seed for t in traces] for name, traces in self.traces.items()},
            "per_episode": [e.to_dict() for c in self.conditions.values() for e in c.episodes],
        }


@dataclass
class ClosedLoopSettings:
    episodes_per_condition: int = 10
    seed: int = DEFAULT_EVAL_SEED  # episode i of every condition uses sim seed seed + i (paired conditions)
    max_steps: int = DEFAULT_MAX_STEPS  # time limit in sim steps of 0.1 s
    real_time_factor: float = 1.0  # the sim node's pacing; the policy node runs on wall-clock time
    schedule: str = "pyramid"
    horizon: int = 2
    denoising_steps: int = 8
    torch_threads: int = 1
    sim_image_size: int = 96  # rendered size; the policy node downscales to the checkpoint's
    diagnostics_rate_hz: float = 10.0  # faster than the 2.5 Hz tick so every tick's levels are seen
    poll_s: float = 0.5  # how often ~/report_success is asked
    # True: an episode ends at its first success. False: it runs max_steps and is scored by
    # its final state (the policy must stop and stay put), as evaluate-sim --full-episodes.
    stop_at_success: bool = True
    videos_per_condition: int = 1
    video_prefer_success: bool = True  # the first successful episode(s), else the first one(s)
    startup_timeout_s: float = 180.0  # torch import and model load on a busy 2-core machine
    policy_parameters: dict[str, Any] = field(default_factory=dict)  # more policy_node parameters
    sim_parameters: dict[str, Any] = field(default_factory=dict)  # more sim_robot_node parameters

    def __post_init__(self) -> None:
        if self.episodes_per_condition < 1:
            raise ValueError(f"episodes_per_condition must be >= 1, got {self.episodes_per_condition}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not (math.isfinite(self.real_time_factor) and self.real_time_factor > 0):
            raise ValueError(f"real_time_factor must be > 0, got {self.real_time_factor}")
        if self.videos_per_condition < 0:
            raise ValueError(f"videos_per_condition must be >= 0, got {self.videos_per_condition}")
        if not self.poll_s > 0:
            raise ValueError(f"poll_s must be > 0, got {self.poll_s}")

    @property
    def max_sim_s(self) -> float:
        return self.max_steps * STEP_S


# -------------------------------------------------------------------- the network


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


def read_checkpoint_spec(checkpoint: str | Path) -> Any:
    """The checkpoint's PolicySpec from its config.yaml (no torch needed); ValueError if it
    is missing or does not fit the simulated robot."""
    import yaml

    from policy.spec import PolicySpec

    path = Path(checkpoint)
    config = path / "config.yaml"
    if not config.is_file():
        raise ValueError(
            f"checkpoint {path}: no config.yaml there (give a checkpoint directory, e.g. <run>/checkpoints/best)"
        )
    try:
        spec = PolicySpec.from_dict(yaml.safe_load(config.read_text())["spec"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        raise ValueError(f"checkpoint {path}: cannot read its spec from config.yaml: {error}") from error
    check_fits_simulator(spec, path)
    return spec


def _ros_argument(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_ros_argument(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _node_command(module: str, parameters: Mapping[str, Any]) -> list[str]:
    command = [sys.executable, "-m", module, "--ros-args"]
    for name, value in parameters.items():
        command += ["-p", f"{name}:={_ros_argument(value)}"]
    return command


def _safety_limits(policy_parameters: Mapping[str, Any]) -> Any:
    """The policy node's safety limits: its defaults, with any that `policy_parameters`
    overrides (the node's parameters carry SafetyLimits' field names)."""
    from dataclasses import fields

    from policy.commanding import SafetyLimits

    names = {f.name for f in fields(SafetyLimits)}
    return SafetyLimits(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in policy_parameters.items() if k in names}
    )


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the parent dies, so a killed
    evaluation leaves no node running (rclpy shuts down cleanly on SIGTERM)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _parse_diagnostics(msg: Any) -> dict[str, Any] | None:
    """The policy node's loop counters and per-camera levels from one DiagnosticArray."""
    loop: dict[str, str] | None = None
    cameras: dict[str, dict[str, str]] = {}
    for status in msg.status:
        if not status.name.startswith(f"{POLICY_NODE}:"):
            continue
        values = {kv.key: kv.value for kv in status.values}
        if status.name.endswith("policy loop"):
            loop = values
        elif " camera " in status.name:
            cameras[status.hardware_id] = values
    if loop is None:
        return None
    levels = {c: int(v["noise_level"]) for c, v in cameras.items() if "noise_level" in v}
    max_levels = [int(v["max_noise_level"]) for v in cameras.values() if "max_noise_level" in v]
    return {
        "ticks": int(loop.get("ticks", "0")),
        "levels": levels,
        "issues": {c: v.get("issues", "") for c, v in cameras.items() if "noise_level" in v},
        "K": max_levels[0] if max_levels else None,
        "counters": {
            key: int(loop.get(key, "0"))
            for key in ("watchdog_stops", "dropped_actions", "adjusted_commands", "rejected_commands")
        },
    }


class _Session:
    """The two node processes and this process's probe node, for a whole run."""

    def __init__(
        self,
        checkpoint: Path,
        spec: Any,
        settings: ClosedLoopSettings,
        log_dir: Path,
        progress_log: Callable[[str], None],
    ) -> None:
        require_private_network()
        if str(PACKAGE) not in sys.path:
            sys.path.insert(0, str(PACKAGE))
        self.settings = settings
        self.cameras: tuple[str, ...] = tuple(spec.camera_names)
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._recording = False  # frames and debug images are kept only for video episodes
        self.limits = _safety_limits(settings.policy_parameters)  # what the node promises to respect
        self._measured: Any = None  # the newest measured pose message: the reference of a restart
        self._latest_diagnostics: dict[str, Any] | None = None
        self._start_episode_buffers()
        self._spinning = threading.Event()
        self._thread: threading.Thread | None = None
        self.K: int | None = None
        self._started_rclpy = False
        try:
            self._start_nodes(checkpoint, spec)
            self._open_dds()
            self._wait_until_ready(progress_log)
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- set-up

    def _start_nodes(self, checkpoint: Path, spec: Any) -> None:
        s = self.settings
        size = spec.cameras[0].height
        sim = {
            "seed": s.seed,
            "real_time_factor": float(s.real_time_factor),
            "image_size": int(s.sim_image_size),
            "cameras": list(self.cameras),
            **s.sim_parameters,
        }
        policy = {
            "checkpoint": str(checkpoint.resolve()),
            "cameras": list(self.cameras),
            "image_size": int(size),
            "actions_per_token": int(spec.actions_per_token),
            "token_period_s": float(spec.token_period_s),
            "schedule": s.schedule,
            "horizon": int(s.horizon),
            "denoising_steps": int(s.denoising_steps),
            "torch_threads": int(s.torch_threads),
            "diagnostics_rate_hz": float(s.diagnostics_rate_hz),
            "debug_image": True,
            "start_enabled": False,
            **s.policy_parameters,
        }
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), str(PACKAGE), os.environ.get("PYTHONPATH", "")) if p),
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, module, parameters in (
            ("sim_robot_node", "df_policy.sim_robot_node", sim),
            ("policy_node", "df_policy.policy_node", policy),
        ):
            log = self.log_dir / f"{name}.log"
            self.logs[name] = log
            with log.open("w") as out:
                # start_new_session: a Ctrl-C in the terminal reaches this process only;
                # close() then stops the nodes in order with SIGINT (their clean shutdown).
                self.processes[name] = subprocess.Popen(
                    _node_command(module, parameters),
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )

    def _open_dds(self) -> None:
        import rclpy
        from df_policy import qos
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float64

        self.context = rclpy.Context()
        # No rclpy signal handlers: Ctrl-C raises KeyboardInterrupt here and close() runs.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self._started_rclpy = True
        self.node = rclpy.create_node("closed_loop_evaluator", context=self.context)
        node = self.node
        node.create_subscription(PoseStamped, qos.TARGET_POSE_TOPIC, self._on_command, qos.reliable_qos(100))
        node.create_subscription(Float64, qos.GRIPPER_WIDTH_COMMAND_TOPIC, self._on_gripper, qos.reliable_qos(100))
        node.create_subscription(PoseStamped, qos.CURRENT_POSE_TOPIC, self._on_pose, qos_profile_sensor_data)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, qos.reliable_qos(50))
        node.create_subscription(Image, f"/{POLICY_NODE}/debug_image", self._on_debug_image, qos.reliable_qos(5))
        for camera in self.cameras:
            node.create_subscription(
                Image,
                qos.camera_topic(camera),
                lambda msg, camera=camera: self._on_frame(camera, msg),
                qos.image_qos(),
            )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._spinning.set()
        self._thread = threading.Thread(target=self._spin, name="closed_loop_dds", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._spinning.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _wait_until_ready(self, progress_log: Callable[[str], None]) -> None:
        from rcl_interfaces.srv import SetParameters
        from std_srvs.srv import SetBool, Trigger

        progress_log("waiting for sim_robot_node and policy_node ...")
        deadline = time.monotonic() + self.settings.startup_timeout_s
        self.clients = {
            "reset_episode": self.node.create_client(Trigger, f"/{SIM_NODE}/reset_episode"),
            "report_success": self.node.create_client(Trigger, f"/{SIM_NODE}/report_success"),
            "enable": self.node.create_client(SetBool, f"/{POLICY_NODE}/enable"),
            "reset": self.node.create_client(Trigger, f"/{POLICY_NODE}/reset"),
            "sim_parameters": self.node.create_client(SetParameters, f"/{SIM_NODE}/set_parameters"),
        }
        for name, client in self.clients.items():
            while not client.wait_for_service(timeout_sec=0.5):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise ClosedLoopError(
                        f"service {client.srv_name} ({name}) did not appear within {self.settings.startup_timeout_s} s"
                        + self._log_tails()
                    )
        # The policy is ready once it publishes diagnostics (the checkpoint is loaded by then).
        while True:
            with self._lock:
                if self._latest_diagnostics is not None:
                    self.K = self._latest_diagnostics["K"]
                    if self.K is not None:
                        break
            self._check_alive()
            if time.monotonic() > deadline:
                raise ClosedLoopError("policy_node published no camera diagnostics in time" + self._log_tails())
            time.sleep(0.1)

    # --------------------------------------------------------------- callbacks
    # They run on the DDS thread; everything they touch is guarded by self._lock.

    def _start_episode_buffers(self) -> None:
        """What one episode collects (call with self._lock held once DDS is open)."""
        self._commands = 0
        self._unsafe = 0
        self._gripper_commands = 0
        self._unsafe_gripper = 0
        self._problems: list[str] = []
        self._previous: Any = None  # the last command: the next one is audited against it
        self._diagnostics: list[tuple[float, dict[str, Any]]] = []
        self._frames: dict[str, list[tuple[float, np.ndarray]]] = {c: [] for c in self.cameras}
        self._debug: list[tuple[float, np.ndarray]] = []

    def _on_command(self, msg: Any) -> None:
        from df_policy.conversions import ConversionError, msg_to_pose, time_to_seconds

        from policy.commanding import PoseCommand, audit_command

        gripper = self.limits.gripper_max_m
        pose, measured = self._measured, None
        if pose is not None:
            with contextlib.suppress(ConversionError):
                measured = PoseCommand(time_to_seconds(pose.header.stamp), *msg_to_pose(pose), gripper)
        with self._lock:
            self._commands += 1
            try:
                position, quat = msg_to_pose(msg)
            except ConversionError as error:
                problems = [f"malformed command: {error}"]
            else:
                command = PoseCommand(time_to_seconds(msg.header.stamp), position, quat, gripper)
                problems = audit_command(self.limits, command, self._previous, measured)
                self._previous = command
            if problems:
                self._unsafe += 1
                self._problems = (self._problems + problems)[:10]

    def _on_gripper(self, msg: Any) -> None:
        with self._lock:
            self._gripper_commands += 1
            width = float(msg.data)
            if not (math.isfinite(width) and self.limits.gripper_min_m <= width <= self.limits.gripper_max_m):
                self._unsafe_gripper += 1
                self._problems = ([*self._problems, f"gripper width {width}"])[:10]

    def _on_pose(self, msg: Any) -> None:
        # 100 Hz: keep the message (one atomic assignment); it is converted per command.
        self._measured = msg

    def _on_diagnostics(self, msg: Any) -> None:
        parsed = _parse_diagnostics(msg)
        if parsed is None:
            return
        with self._lock:
            self._latest_diagnostics = parsed
            self._diagnostics.append((time.monotonic(), parsed))

    def _on_debug_image(self, msg: Any) -> None:
        self._keep_image(msg, None)

    def _on_frame(self, camera: str, msg: Any) -> None:
        self._keep_image(msg, camera)

    def _keep_image(self, msg: Any, camera: str | None) -> None:
        """Keep (arrival time, image) of a camera (None: the debug image) while an episode is
        recorded; undecodable images are skipped. The lists are swapped per episode, so
        the one to append to is looked up under the lock."""
        if not self._recording:
            return
        from df_policy.conversions import ConversionError, msg_to_image

        try:
            image = msg_to_image(msg)
        except ConversionError:
            return
        with self._lock:
            (self._debug if camera is None else self._frames[camera]).append((time.monotonic(), image))

    # ---------------------------------------------------------------- services

    def _call(self, name: str, request: Any, timeout: float = 15.0) -> Any:
        future = self.clients[name].call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                self._check_alive()
                raise ClosedLoopError(f"no answer from {self.clients[name].srv_name} within {timeout} s")
            time.sleep(0.005)
        if future.exception() is not None:
            raise ClosedLoopError(f"{self.clients[name].srv_name} failed: {future.exception()!r}")
        return future.result()

    def _set_sim_parameters(self, **values: Any) -> None:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]
        results = self._call("sim_parameters", request).results
        refused = [f"{name}: {r.reason}" for name, r in zip(values, results, strict=True) if not r.successful]
        if refused:
            raise ClosedLoopError(f"sim_robot_node refused parameters: {refused}")

    def _enable(self, enabled: bool) -> None:
        from std_srvs.srv import SetBool

        if not self._call("enable", SetBool.Request(data=enabled)).success:
            raise ClosedLoopError(f"policy_node refused ~/enable {enabled}")

    def _report(self) -> dict[str, Any]:
        from std_srvs.srv import Trigger

        return json.loads(self._call("report_success", Trigger.Request()).message)

    # ----------------------------------------------------------------- episodes

    def run_episode(
        self, condition: str, index: int, seed: int, plan: FaultPlan | None, record: bool
    ) -> EpisodeOutcome:
        from std_srvs.srv import Trigger

        s = self.settings
        self._enable(False)
        self._set_sim_parameters(seed=int(seed), fault_plan=plan.to_json() if plan is not None else "")
        reset = self._call("reset_episode", Trigger.Request())
        if not reset.success:
            raise ClosedLoopError(f"sim_robot_node could not reset the episode: {reset.message}")
        t0 = time.monotonic()
        if not self._call("reset", Trigger.Request()).success:
            raise ClosedLoopError("policy_node refused ~/reset")
        with self._lock:
            self._start_episode_buffers()
            before = self._latest_diagnostics
            self._recording = record
        enabled_at = time.monotonic()
        self._enable(True)

        wall_limit = s.max_sim_s / s.real_time_factor * 1.5 + 15.0  # a slow machine's sim lags wall time
        ended_by, report, first_success = "time_limit", {}, None
        next_poll = time.monotonic() + s.poll_s
        while True:
            time.sleep(max(0.0, next_poll - time.monotonic()))
            next_poll += s.poll_s
            self._check_alive()
            report = self._report()
            if report.get("success") and first_success is None:
                first_success = float(report["time_s"])
                if s.stop_at_success:
                    ended_by = "success"
                    break
            if float(report.get("time_s", 0.0)) >= s.max_sim_s - 1e-6:
                break
            if time.monotonic() - t0 > wall_limit:
                ended_by = "wall_limit"
                break
        wall_s = time.monotonic() - t0
        self._enable(False)
        disabled_at = time.monotonic()
        time.sleep(0.2)  # let in-flight commands and the last diagnostics arrive
        with self._lock:
            self._recording = False
            diagnostics = [(t, d) for t, d in self._diagnostics if enabled_at <= t <= disabled_at + 0.15]
            counts = (self._commands, self._unsafe, self._gripper_commands, self._unsafe_gripper, list(self._problems))
            frames = {c: list(v) for c, v in self._frames.items()}
            debug = list(self._debug)
            self._frames = {c: [] for c in self.cameras}
            self._debug = []

        per_tick: dict[int, dict[str, Any]] = {}
        for _, parsed in diagnostics:
            per_tick.setdefault(parsed["ticks"], parsed)  # levels of tick n: the first report of n
        if before is not None:
            per_tick.pop(before["ticks"], None)  # a tick from before the episode
        noisy = {c: 0 for c in self.cameras}
        unusable = {c: 0 for c in self.cameras}
        max_level = {c: 0 for c in self.cameras}
        any_noise = 0
        K = self.K or 0
        for parsed in per_tick.values():
            levels = parsed["levels"]
            any_noise += any(levels.get(c, 0) > 0 for c in self.cameras)
            for c in self.cameras:
                level = levels.get(c, 0)
                noisy[c] += level > 0
                unusable[c] += K > 0 and level >= K
                max_level[c] = max(max_level[c], level)
        last = diagnostics[-1][1] if diagnostics else None
        first = before or (diagnostics[0][1] if diagnostics else None)
        delta = {
            key: (last["counters"][key] - first["counters"][key]) if last and first else 0
            for key in ("watchdog_stops", "dropped_actions", "adjusted_commands", "rejected_commands")
        }
        # Scored at the first success, or (stop_at_success False) by the final state.
        success = bool(report.get("success")) if not s.stop_at_success else first_success is not None
        time_to_success = first_success if success else None
        trace = None
        if record:
            trace = self._trace(condition, seed, success, time_to_success, t0, frames, debug, diagnostics)
        commands, unsafe, gripper, unsafe_gripper, problems = counts
        return EpisodeOutcome(
            condition=condition,
            index=index,
            seed=int(seed),
            success=success,
            time_to_success_s=time_to_success,
            sim_time_s=float(report.get("time_s", 0.0)),
            wall_s=round(wall_s, 2),
            ended_by=ended_by,
            ticks=len(per_tick),
            ticks_with_noise=any_noise,
            ticks_with_noise_per_camera=noisy,
            ticks_unusable_per_camera=unusable,
            max_level_per_camera=max_level,
            commands=commands,
            unsafe_commands=unsafe,
            gripper_commands=gripper,
            unsafe_gripper_commands=unsafe_gripper,
            unsafe_examples=problems,
            fault_plan=plan.to_dict() if plan is not None else None,
            episode_info=json.loads(reset.message),
            report=report,
            trace=trace,
            **delta,
        )

    def _trace(
        self,
        condition: str,
        seed: int,
        success: bool,
        time_to_success: float | None,
        t0: float,
        frames: dict[str, list[tuple[float, np.ndarray]]],
        debug: list[tuple[float, np.ndarray]],
        diagnostics: list[tuple[float, dict[str, Any]]],
    ) -> EpisodeTrace:
        """Pair each debug image (published at the end of its tick) with the first
        diagnostics that came after it: they report that tick's noise levels (a tick
        lasts 0.4 s, diagnostics come every 0.1 s)."""
        times = [t for t, _ in diagnostics]
        ticks = []
        rows = len(self.cameras)
        for arrival, image in debug:
            j = int(np.searchsorted(times, arrival))
            parsed = diagnostics[j][1] if j < len(diagnostics) else (diagnostics[-1][1] if diagnostics else None)
            size = image.shape[0] // rows
            seen, predicted = {}, {}
            for r, camera in enumerate(self.cameras):
                row = image[r * size : (r + 1) * size]
                seen[camera] = row[:, : row.shape[1] // 2].copy()
                predicted[camera] = row[:, row.shape[1] // 2 :].copy()
            ticks.append(
                TickRecord(
                    time_s=arrival - t0,
                    levels={c: int(parsed["levels"].get(c, -1)) if parsed else -1 for c in self.cameras},
                    issues={c: parsed["issues"].get(c, "") if parsed else "" for c in self.cameras},
                    seen=seen,
                    predicted=predicted,
                )
            )
        return EpisodeTrace(
            condition=condition,
            seed=int(seed),
            success=success,
            time_to_success_s=time_to_success,
            max_level=int(self.K or 0),
            cameras=self.cameras,
            frames={c: [CameraFrame(t - t0, image) for t, image in v] for c, v in frames.items()},
            ticks=ticks,
        )

    # ------------------------------------------------------------------ teardown

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ClosedLoopError(f"{name} exited with code {process.returncode}" + self._log_tails(name))

    def _log_tails(self, only: str | None = None, lines: int = 15) -> str:
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

    def close(self) -> None:
        """Stop the nodes (SIGINT: their own clean shutdown; SIGKILL if they hang), then
        this process's DDS participant."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=15.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5.0)
        self._spinning.clear()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._started_rclpy:
            import rclpy

            if self._thread is not None:
                self.executor.shutdown(timeout_sec=2.0)
                self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)
            self._started_rclpy = False


# ---------------------------------------------------------------------- the run


def run_ros_episodes(
    checkpoint: str | Path,
    conditions: Mapping[str, ConditionSpec] | None = None,
    settings: ClosedLoopSettings | None = None,
    progress: bool | Callable[[EpisodeOutcome, dict[str, ConditionResult]], None] = True,
    log_dir: str | Path | None = None,
) -> ClosedLoopResults:
    """Run `settings.episodes_per_condition` episodes of each condition (default: clean and
    front camera occluded) through sim_robot_node and policy_node, started as child
    processes (their logs go to `log_dir`, default a temporary directory).

    `progress`: True prints a progress bar and one line per episode; a function is
    called after each episode with it and the results so far; False is silent.
    Raises PrivateNetworkError outside a private network namespace, ValueError for a
    checkpoint or condition that cannot run, ClosedLoopError when a node fails."""
    import tempfile

    settings = settings or ClosedLoopSettings()
    checkpoint = Path(checkpoint)
    require_private_network()
    spec = read_checkpoint_spec(checkpoint)
    if settings.real_time_factor != 1.0:
        warnings.warn(
            f"real_time_factor {settings.real_time_factor:g}: the policy node ticks on wall-clock time "
            "while the simulator stamps its messages in sim time, so the policy sees fewer tokens per sim second "
            "and its commands are scheduled against the wrong clock; results do not represent the product",
            stacklevel=2,
        )
    cameras = tuple(spec.camera_names)
    specs: dict[str, ConditionSpec] = (
        dict(conditions) if conditions is not None else {name: BUILTIN_CONDITIONS[name] for name in DEFAULT_CONDITIONS}
    )
    if not specs:
        raise ValueError("no conditions to run")
    seeds = [settings.seed + i for i in range(settings.episodes_per_condition)]
    # Every plan is built (and checked against the cameras) before any node starts.
    plans: dict[str, list[FaultPlan | None]] = {}
    for name, condition in specs.items():
        plans[name] = [condition_plan(condition, seed, settings.max_steps, cameras) for seed in seeds]
        for plan in plans[name]:
            if plan is not None:
                plan.check_cameras(cameras)
    results = {name: ConditionResult(name, describe_condition(condition)) for name, condition in specs.items()}
    traces: dict[str, list[EpisodeTrace]] = {name: [] for name in specs}

    bar = None
    say: Callable[[str], None] = _silent
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=len(specs) * len(seeds), desc="ROS closed loop", unit="episode")
        say = bar.write
    log_path = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="ros_closed_loop_"))
    started = time.monotonic()
    session = _Session(checkpoint, spec, settings, log_path, say)
    try:
        for name in specs:
            for index, seed in enumerate(seeds):
                kept = traces[name]
                wanted = settings.videos_per_condition
                successes_kept = sum(t.success for t in kept)
                record = wanted > 0 and (
                    len(kept) < wanted or (settings.video_prefer_success and successes_kept < wanted)
                )
                outcome = session.run_episode(name, index, seed, plans[name][index], record)
                results[name].episodes.append(outcome)
                if outcome.trace is not None:
                    _keep_trace(kept, outcome.trace, wanted)
                    outcome.trace = None  # kept (or not) in `traces` only: memory stays bounded
                if bar is not None:
                    bar.update(1)
                    result = results[name]
                    say(
                        f"{name:<10} seed {seed}: "
                        + (f"success at {outcome.time_to_success_s:.1f} s" if outcome.success else outcome.ended_by)
                        + f", {outcome.wall_s:.0f} s wall, ticks with k>0 {outcome.ticks_with_noise}/{outcome.ticks}, "
                        f"unsafe {outcome.unsafe_commands + outcome.unsafe_gripper_commands}/"
                        f"{outcome.commands + outcome.gripper_commands}  "
                        f"[{name} {result.successes}/{len(result.episodes)}]"
                    )
                    bar.set_postfix({n: f"{r.successes}/{len(r.episodes)}" for n, r in results.items()})
                elif callable(progress):
                    progress(outcome, results)
    finally:
        session.close()
        if bar is not None:
            bar.close()
    described = {**asdict(settings), "conditions": {name: results[name].description for name in specs}}
    described["log_dir"] = str(log_path)
    return ClosedLoopResults(
        checkpoint=str(checkpoint),
        cameras=cameras,
        max_level=int(session.K or 0),
        settings=described,
        conditions=results,
        seconds=time.monotonic() - started,
        traces=traces,
    )


def _silent(line: str) -> None:
    pass


def _keep_trace(kept: list[EpisodeTrace], trace: EpisodeTrace, wanted: int) -> None:
    """Fill up to `wanted` traces; a successful episode replaces a failed one."""
    if len(kept) < wanted:
        kept.append(trace)
        return
    if trace.success:
        for i, old in enumerate(kept):
            if not old.success:
                kept[i] = trace
                return


def check_condition_name(name: str) -> None:
    """ValueError unless `name` is a condition the CLI knows or a FaultPlan JSON file."""
    if name in BUILTIN_CONDITIONS or name in FAULT_PLAN_CHOICES or Path(name).is_file():
        return
    raise ValueError(
        f"unknown condition {name!r}: use {sorted(BUILTIN_CONDITIONS)}, one of {list(FAULT_PLAN_CHOICES)}, "
        "or a FaultPlan JSON file"
    )


def describe_condition(spec: ConditionSpec) -> str:
    if spec is None:
        return "no faults"
    if isinstance(spec, NamedFaults):
        where = ", ".join(spec.cameras) + " camera" if spec.cameras else "any camera"
        if spec.name == "paper":
            return (
                f"the paper's occlusion test: {where} fully occluded (black) for two 1.5-3 s spans and a "
                "distractor on the table, drawn per episode (sim.faults.FaultPlan.occlusion_test)"
            )
        what = "fully occluded (black frames)" if spec.name == "blackout" else f"{spec.name} faults"
        return f"{where} {what}, spans drawn per episode (dfstack.evaluate_sim.fault_plan_for)"
    if isinstance(spec, FaultPlan):
        return "fixed fault plan: " + ", ".join(
            f"{e.kind}{'@' + e.camera if e.camera else ''} {e.start_s:g}-{e.end_s:g} s" for e in spec.events
        )
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text in BUILTIN_CONDITIONS:
            return describe_condition(BUILTIN_CONDITIONS[text])
        return "no faults" if text == "none" else f"fault plan {text}"
    return getattr(spec, "__name__", "custom fault plans")


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    from dfstack.evaluate_sim import add_episode_arguments

    parser = argparse.ArgumentParser(
        prog="python -m dfstack.ros_closed_loop",
        description=(
            "Closed-loop success of a policy checkpoint through the ROS 2 nodes: sim_robot_node (the "
            "simulated FR3) and policy_node, each in its own process, over DDS on loopback. Runs the "
            "same episodes (seeds) under each condition, audits every command against the safety "
            "limits, and writes a report folder (results.json, summary.md, a video per condition). "
            "Must run inside a private network namespace: prefix the command with scripts/in_netns.sh."
        ),
        epilog=(
            "conditions: clean (no faults), occluded (front camera black for a few 1-3 s spans), any fault "
            f"name of evaluate-sim ({', '.join(FAULT_PLAN_CHOICES)}; drawn over all cameras), or a FaultPlan "
            "JSON file.\n\nexample:\n  scripts/in_netns.sh .venv/bin/python -m dfstack.ros_closed_loop "
            "--checkpoint outputs/swap_fruit-df/checkpoints/best --episodes 10 --report-dir reports/ros_eval"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint directory (<run>/checkpoints/best)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per condition (default 10)")
    parser.add_argument("--report-dir", required=True, help="write results.json, summary.md and videos here")
    parser.add_argument(
        "--conditions", default=",".join(DEFAULT_CONDITIONS), help="comma-separated (default clean,occluded)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_EVAL_SEED, help=f"sim seed of episode 0 (default {DEFAULT_EVAL_SEED})"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=DEFAULT_MAX_STEPS,
        help=f"time limit in sim steps of 0.1 s (default {DEFAULT_MAX_STEPS} = {DEFAULT_MAX_STEPS * STEP_S:g} s)",
    )
    parser.add_argument(
        "--real-time-factor",
        type=float,
        default=1.0,
        help="sim_robot_node pacing (default 1.0). The policy node runs on wall-clock time, so only 1.0 "
        "keeps the simulator's stamps and the policy's clock in step; other values are for debugging only",
    )
    add_episode_arguments(parser)
    parser.add_argument("--videos", type=int, default=1, help="video episodes per condition (default 1; 0 = none)")
    parser.add_argument(
        "--training-run", help="a training run directory: its metrics.jsonl becomes the report's training curve"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-episode lines")
    return parser


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a job runner's stop) takes the same path as Ctrl-C: the nodes are stopped.
        signal.signal(signal.SIGTERM, _terminate)
    from dfstack import report as reporting

    names = [name.strip() for name in args.conditions.split(",") if name.strip()]
    try:
        if not names:
            raise ValueError("--conditions is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"--conditions names a condition twice: {names}")
        settings = ClosedLoopSettings(
            episodes_per_condition=args.episodes,
            seed=args.seed,
            max_steps=args.max_steps,
            real_time_factor=args.real_time_factor,
            stop_at_success=not args.full_episodes,
            schedule=args.schedule,
            horizon=args.horizon,
            denoising_steps=args.steps,
            videos_per_condition=args.videos,
        )
        for name in names:
            check_condition_name(name)  # before minutes of start-up
        history = reporting.load_training_history(args.training_run) if args.training_run else None
        report_dir = Path(args.report_dir)
        results = run_ros_episodes(
            args.checkpoint,
            {name: name for name in names},
            settings,
            progress=not args.no_progress,
            log_dir=report_dir / "logs",
        )
    except (PrivateNetworkError, ValueError, OSError) as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    except ClosedLoopError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; the nodes were stopped", file=sys.stderr)
        return 130
    written = reporting.write_report(
        report_dir,
        results,
        training_history=history,
        machine_info=reporting.machine_info(),
        command=" ".join([parser.prog, *(sys.argv[1:] if argv is None else argv)]),
    )
    print(reporting.format_table(results))
    print(f"report: {written['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
