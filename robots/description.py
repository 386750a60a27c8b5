"""Robot descriptions: the robot's facts, in one YAML file per robot setup.

A description names the embodiment (what is measured and commanded), the arm's model,
the cameras with their topics and native frame sizes, the state topics, where arm and
gripper commands go, and the safety limits every command is held to. The policy node,
the simulated robot and the recorder read it; a checkpoint (the policy's facts) is
checked against it (`check_policy_spec`), naming every mismatch.

Topic names are relative (no leading '/'), so that a node started in a namespace
(`namespace:=robot1`) finds its robot's topics under that namespace.

    robot = load_robot_description("fr3_sim")              # robots/descriptions/fr3_sim.yaml
    robot = load_robot_description("/path/to/my_robot.yaml")
    robot.check_policy_spec(checkpoint.spec)                # RobotDescriptionError naming each mismatch
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from policy.commanding import SafetyLimits
from policy.config_io import dataclass_from_dict
from policy.spec import CameraSpec, PolicySpec
from robots.embodiment import EMBODIMENTS, Embodiment, embodiment
from robots.franka import FRANKA_ARMS, FrankaArm, franka_arm

DESCRIPTIONS_DIR = Path(__file__).resolve().parent / "descriptions"
DEFAULT_ROBOT_DESCRIPTION = "fr3_sim"  # what a node runs with when it is given no description
ARM_SINKS = ("pose", "joint_trajectory")
GRIPPER_SINKS = ("width_topic", "franka_action", "none")
IMAGE_TRANSPORTS = ("raw", "compressed")


class RobotDescriptionError(ValueError):
    """A robot description is missing, malformed, or does not fit a policy; the message
    names the file, the key and what was expected."""


@dataclass(frozen=True)
class CameraDescription:
    """One camera as the robot delivers it (before the policy's crop and resize)."""

    name: str
    topic: str  # sensor_msgs/Image topic (compressed transport: <topic>/compressed)
    height: int  # native frame size, px
    width: int
    rate_hz: float
    transport: str = "raw"  # raw | compressed (JPEG/PNG)

    def __post_init__(self) -> None:
        if self.transport not in IMAGE_TRANSPORTS:
            raise ValueError(f"camera {self.name!r}: transport must be one of {list(IMAGE_TRANSPORTS)}")
        if self.height < 8 or self.width < 8 or not self.rate_hz > 0:
            raise ValueError(
                f"camera {self.name!r}: need height, width >= 8 px and rate_hz > 0, "
                f"got {self.height}x{self.width} at {self.rate_hz} Hz"
            )


@dataclass(frozen=True)
class StateTopics:
    """Where the robot's measured state comes from (franka_robot_state_broadcaster and
    franka_gripper publish these best-effort; subscribers use sensor-data QoS)."""

    current_pose_topic: str
    measured_joint_states_topic: str
    gripper_joint_states_topic: str
    rate_hz: float  # how often the pose and joint states arrive
    gripper_rate_hz: float


@dataclass(frozen=True)
class ArmCommandSink:
    """Where arm commands go. `pose`: geometry_msgs/PoseStamped for a Cartesian impedance
    controller (CRISP's `target_pose`); `joint_trajectory`: trajectory_msgs/JointTrajectory
    for franka_ros2's joint_trajectory_controller."""

    sink: str
    topic: str

    def __post_init__(self) -> None:
        if self.sink not in ARM_SINKS:
            raise ValueError(f"command.sink must be one of {list(ARM_SINKS)}, got {self.sink!r}")


@dataclass(frozen=True)
class GripperCommandSink:
    """Where gripper commands go: `width_topic` (std_msgs/Float64 width in m: the
    simulator), `franka_action` (franka_gripper's move/grasp actions under
    `action_namespace`: the real hand) or `none`."""

    sink: str
    topic: str = ""
    action_namespace: str = ""

    def __post_init__(self) -> None:
        if self.sink not in GRIPPER_SINKS:
            raise ValueError(f"gripper.sink must be one of {list(GRIPPER_SINKS)}, got {self.sink!r}")
        if self.sink == "width_topic" and not self.topic:
            raise ValueError("gripper.sink 'width_topic' needs gripper.topic")
        if self.sink == "franka_action" and not self.action_namespace:
            raise ValueError("gripper.sink 'franka_action' needs gripper.action_namespace")


@dataclass(frozen=True)
class RobotDescription:
    name: str
    robot_type: str  # fr3 | fer (robots.franka)
    embodiment: str  # ee_pose | joint_position (robots.embodiment)
    frame_id: str  # the base frame poses are expressed in
    cameras: tuple[CameraDescription, ...]
    state: StateTopics
    command: ArmCommandSink
    gripper: GripperCommandSink
    safety: SafetyLimits
    source: str = ""  # the file it was read from

    @property
    def arm(self) -> FrankaArm:
        return franka_arm(self.robot_type)

    @property
    def embodiment_model(self) -> Embodiment:
        return embodiment(self.embodiment)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def camera(self, name: str) -> CameraDescription:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(f"robot {self.name!r} has no camera {name!r}; it has {list(self.camera_names)}")

    def policy_mismatches(self, spec: PolicySpec) -> list[str]:
        """Every reason a policy with `spec` cannot run on this robot."""
        problems: list[str] = []
        missing = [c.name for c in spec.cameras if c.name not in self.camera_names]
        if missing:
            problems.append(
                f"cameras {missing} of the checkpoint are not on robot {self.name!r} (it has {list(self.camera_names)})"
            )
        for camera in spec.cameras:
            if camera.name in missing or camera.crop is None:
                continue
            native = self.camera(camera.name)
            top, left, height, width = camera.crop
            if top + height > native.height or left + width > native.width:
                problems.append(
                    f"camera {camera.name!r}: the checkpoint's crop [top {top}, left {left}, {height}x{width}] "
                    f"does not fit the robot's {native.height}x{native.width} frames"
                )
        if spec.embodiment != self.embodiment:
            problems.append(f"embodiment: checkpoint {spec.embodiment!r}, robot {self.name!r} {self.embodiment!r}")
        else:
            model = self.embodiment_model
            if spec.action != model.action:
                problems.append(
                    f"action: checkpoint [{spec.action.describe()}], embodiment {model.name!r} "
                    f"[{model.action.describe()}]"
                )
            if spec.proprio_dim != model.proprio_dim:
                problems.append(
                    f"proprioception: checkpoint {spec.proprio_dim} values, embodiment {model.name!r} "
                    f"{model.proprio_dim}"
                )
        if self.embodiment == "joint_position" and self.command.sink != "joint_trajectory":
            problems.append(
                f"robot {self.name!r}: a joint_position policy needs command.sink 'joint_trajectory', "
                f"got {self.command.sink!r}"
            )
        return problems

    def check_policy_spec(self, spec: PolicySpec, what: str = "checkpoint") -> None:
        problems = self.policy_mismatches(spec)
        if problems:
            raise RobotDescriptionError(
                f"{what} does not fit robot description {self.source or self.name}:\n  - " + "\n  - ".join(problems)
            )

    def policy_spec(
        self,
        cameras: Sequence[str],
        image_size: int | Sequence[int],
        actions_per_token: int,
        token_period_s: float,
        crops: Mapping[str, Sequence[int]] | None = None,
        channels: int = 3,
    ) -> PolicySpec:
        """The policy spec a task trains on this robot: the task's cameras (each of the
        robot's), image size (one int: square; [height, width]) and crops, its rates, and
        the embodiment's proprioception and action."""
        size = [int(image_size)] * 2 if isinstance(image_size, int) else [int(v) for v in image_size]
        if len(size) != 2:
            raise RobotDescriptionError(f"image_size must be one number or [height, width], got {image_size!r}")
        crops = dict(crops or {})
        unknown = sorted(set(crops) - set(cameras))
        if unknown:
            raise RobotDescriptionError(f"crops name cameras {unknown} that are not among the task's {list(cameras)}")
        for name in cameras:
            self.camera(name)  # KeyError naming the robot's cameras
        model = self.embodiment_model
        try:
            spec = PolicySpec(
                cameras=tuple(
                    CameraSpec(
                        str(name),
                        size[0],
                        size[1],
                        int(channels),
                        tuple(int(v) for v in crops[name]) if crops.get(name) is not None else None,
                    )
                    for name in cameras
                ),
                proprio_dim=model.proprio_dim,
                proprio_names=model.proprio_names,
                action=model.action,
                actions_per_token=int(actions_per_token),
                token_period_s=float(token_period_s),
                embodiment=model.name,
            )
        except (TypeError, ValueError) as error:  # the spec's own message names the field
            raise RobotDescriptionError(str(error)) from error
        self.check_policy_spec(spec, "the task's policy spec")
        return spec


def absolute_topic(name: str, namespace: str = "") -> str:
    """A description's topic as a node in `namespace` resolves it: a relative name is put
    under the namespace ("" or "/": the root), an absolute one stays as it is. For
    programs that need the full name (a probe, a benchmark's publisher): ROS resolves
    the relative names itself for the node that creates the topic."""
    if not name or name.startswith("~"):
        raise ValueError(f"a robot description's topic must be a plain name, got {name!r}")
    if name.startswith("/"):
        return name
    space = namespace.strip("/")
    return f"/{space}/{name}" if space else f"/{name}"


def robot_description_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A description's file: a path to a YAML file, or the name of one in robots/descriptions/."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in text:
        if not path.is_file():
            raise RobotDescriptionError(f"robot description {text!r} does not exist")
        return path
    candidate = DESCRIPTIONS_DIR / f"{text}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in DESCRIPTIONS_DIR.glob("*.yaml"))
        raise RobotDescriptionError(
            f"unknown robot description {text!r}: give a YAML file's path or one of {known} (robots/descriptions/)"
        )
    return candidate


def _section(data: Mapping[str, Any], key: str, cls: type, source: str) -> Any:
    value = data.get(key)
    if not isinstance(value, Mapping):
        names = [f.name for f in fields(cls)]
        raise RobotDescriptionError(f"{source}: '{key}' must be a mapping with keys {names}, got {value!r}")
    try:
        return dataclass_from_dict(cls, dict(value), key)
    except (TypeError, ValueError) as error:
        raise RobotDescriptionError(f"{source}: {key}: {error}") from error


def robot_description_from_dict(data: Mapping[str, Any], source: str = "<robot description>") -> RobotDescription:
    if not isinstance(data, Mapping):
        raise RobotDescriptionError(f"{source}: a robot description is a mapping, got {type(data).__name__}")
    required = ("name", "robot_type", "embodiment", "frame_id", "cameras", "state", "command", "gripper", "safety")
    known = {f.name for f in fields(RobotDescription)} - {"source"}
    missing = [key for key in required if key not in data]
    unknown = sorted(set(data) - known)
    if missing or unknown:
        detail = [f"missing {missing}"] if missing else []
        detail += [f"unknown {unknown}"] if unknown else []
        raise RobotDescriptionError(f"{source}: keys {'; '.join(detail)}; a description has {sorted(known)}")
    if data["robot_type"] not in FRANKA_ARMS:
        raise RobotDescriptionError(
            f"{source}: robot_type must be one of {sorted(FRANKA_ARMS)}, got {data['robot_type']!r}"
        )
    if data["embodiment"] not in EMBODIMENTS:
        raise RobotDescriptionError(
            f"{source}: embodiment must be one of {sorted(EMBODIMENTS)}, got {data['embodiment']!r}"
        )
    raw_cameras = data["cameras"]
    if not isinstance(raw_cameras, Sequence) or isinstance(raw_cameras, str) or not raw_cameras:
        raise RobotDescriptionError(f"{source}: 'cameras' must be a non-empty list of cameras")
    cameras = []
    for index, raw in enumerate(raw_cameras):
        if not isinstance(raw, Mapping):
            raise RobotDescriptionError(f"{source}: cameras[{index}] must be a mapping, got {raw!r}")
        try:
            cameras.append(dataclass_from_dict(CameraDescription, dict(raw), f"cameras[{index}]"))
        except (TypeError, ValueError) as error:
            raise RobotDescriptionError(f"{source}: cameras[{index}]: {error}") from error
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise RobotDescriptionError(f"{source}: camera names must be unique, got {names}")
    safety = dict(data["safety"]) if isinstance(data["safety"], Mapping) else data["safety"]
    if isinstance(safety, dict):
        safety = {k: tuple(v) if isinstance(v, list) else v for k, v in safety.items()}
    return RobotDescription(
        name=str(data["name"]),
        robot_type=str(data["robot_type"]),
        embodiment=str(data["embodiment"]),
        frame_id=str(data["frame_id"]),
        cameras=tuple(cameras),
        state=_section(data, "state", StateTopics, source),
        command=_section(data, "command", ArmCommandSink, source),
        gripper=_section(data, "gripper", GripperCommandSink, source),
        safety=_section({"safety": safety}, "safety", SafetyLimits, source),
        source=source,
    )


def load_robot_description(name_or_path: str | os.PathLike[str]) -> RobotDescription:
    path = robot_description_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RobotDescriptionError(f"robot description {path}: cannot be read as YAML: {error}") from error
    return robot_description_from_dict(data, str(path))
