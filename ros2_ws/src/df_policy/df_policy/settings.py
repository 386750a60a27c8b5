"""The nodes' own settings: what is theirs to choose, never a fact of the robot (its
robot description's) or of the policy (its checkpoint's). No ROS import: the parameters
and `--help` are generated from these fields.

PolicyNodeSettings is policy_node's (the rest of its parameters are the core's config
dataclasses: runner, frame health, safety limits, watchdog; docs/policy_node.md's table
is generated from them too). TeleopRecorderSettings is teleop_recorder_node's: the
store, the task name, the teleop device's mapping, the control loop and the terminal."""

from __future__ import annotations

import math
from dataclasses import dataclass

from policy.config_io import documented
from robots.description import DEFAULT_ROBOT_DESCRIPTION

TICK_TRIGGERS = ("frames", "timer")
EXECUTORS = ("single", "multi")
TELEOP_INPUTS = ("twist", "joy")
TELEOP_FRAMES = ("base", "tool")
ROBOT_DESCRIPTION_DOC = (
    "robot description: a name in robots/descriptions/ or a YAML file's path (cameras, topics, limits)"
)


@dataclass(frozen=True)
class PolicyNodeSettings:
    checkpoint: str = documented("", "checkpoint directory (required): the policy and all of its facts")
    robot_description: str = documented(DEFAULT_ROBOT_DESCRIPTION, ROBOT_DESCRIPTION_DOC)
    device: str = documented("cpu", "torch device of the policy (cpu, cuda, cuda:1)")
    torch_threads: int = documented(1, "torch intra-op threads (1: no OpenMP barriers stalling a tick)", low=1)
    policy_rate_hz: float = documented(0.0, "policy ticks per second (0: one per token period)", low=0.0)
    tick_trigger: str = documented(
        "frames",
        "frames: tick as soon as every camera has a new frame once a period is nearly up; timer: fixed period",
        choices=TICK_TRIGGERS,
    )
    command_rate_hz: float = documented(50.0, "interpolated commands per second", low=0.0)
    use_surprise: bool = documented(False, "frame health also compares each frame with the model's predicted frame")
    proprio_stale_s: float = documented(0.2, "proprioception older than this enters the policy as unknown (s)", low=0.0)
    start_enabled: bool = documented(False, "command the arm at once (false: wait for ~/enable)")
    reset_on_enable: bool = documented(True, "~/enable(true) starts a new episode (latent back to z_0)")
    executor: str = documented("single", "what spins the callbacks: single or multi (3 threads)", choices=EXECUTORS)
    stall_timeout_s: float = documented(
        5.0,
        "exit (code 1, stacks on stderr) when the executor is stuck this long, so launch respawns the node; 0: never",
        low=0.0,
    )
    diagnostics_rate_hz: float = documented(2.0, "/diagnostics messages per second", low=0.0)
    debug_image: bool = documented(True, "publish ~/debug_image (each camera next to its predicted frame)")
    debug_image_size: int = documented(96, "size of each tile of the debug image (px)", low=8)

    def __post_init__(self) -> None:
        for name in ("command_rate_hz", "diagnostics_rate_hz"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")
        if not self.policy_rate_hz >= 0:
            raise ValueError(f"policy_rate_hz must be >= 0 (0 = token rate), got {self.policy_rate_hz}")


@dataclass(frozen=True)
class TeleopRecorderSettings:
    robot_description: str = documented(DEFAULT_ROBOT_DESCRIPTION, ROBOT_DESCRIPTION_DOC)
    store_path: str = documented("demos.zarr", "episode store to record into (created if missing)")
    task: str = documented("swap fruit", "task name stored with every episode")
    input: str = documented(
        "twist",
        "twist: motion from twist_topic, gripper from joy buttons; joy: everything from joy_topic",
        choices=TELEOP_INPUTS,
    )
    twist_topic: str = documented("/spacenav/twist", "the device's geometry_msgs/Twist (input twist)")
    joy_topic: str = documented(
        "/spacenav/joy", "the device's sensor_msgs/Joy: gripper buttons (and axes with input joy)"
    )
    twist_linear_scale: float = documented(0.25, "m/s per unit of the device twist (spacenav_node: [-1, 1])")
    twist_angular_scale: float = documented(1.0, "rad/s per unit of the device twist")
    joy_linear_axes: tuple[int, int, int] = documented((0, 1, 2), "Joy axes of x, y, z motion (-1: none)")
    joy_angular_axes: tuple[int, int, int] = documented((3, 4, 5), "Joy axes of rotation about x, y, z (-1: none)")
    joy_linear_scale: float = documented(0.25, "m/s at full deflection of a Joy axis (negative inverts)")
    joy_angular_scale: float = documented(1.0, "rad/s at full deflection of a Joy axis (negative inverts)")
    joy_deadzone: float = documented(0.05, "|axis| below this reads as zero", low=0.0, high=0.99)
    gripper_close_button: int = documented(0, "Joy button that closes the gripper while held", low=0)
    gripper_open_button: int = documented(1, "Joy button that opens the gripper while held", low=0)
    teleop_frame: str = documented(
        "base",
        "base: the twist is in the robot's base frame (a SpaceMouse on the table); tool: in the tool's",
        choices=TELEOP_FRAMES,
    )
    control_rate_hz: float = documented(100.0, "target poses (and command samples) per second", low=1.0)
    input_timeout_s: float = documented(
        0.25, "device input older than this counts as none: the target stops (s)", low=0.0
    )
    stop_marks_success: bool = documented(
        True, "~/stop_episode commits with success = true ('f' in the terminal: false)"
    )
    keyboard: bool = documented(True, "single-key commands s/e/f/d/q/h when stdin is a terminal")
    status_period_s: float = documented(0.5, "status line refresh (s; 0: none)", low=0.0)
    min_free_mb: int = documented(256, "refuse to record with less free disk space than this (MiB)", low=0)
