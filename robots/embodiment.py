"""Embodiments: what the proprioception and the action are, how recorded streams become
them, and how an action becomes a command.

This is the role of LeRobot's robot features or Diffusion Policy's shape_meta. Each
embodiment names its vector layouts once; the policy spec, the training reader, the
simulator and the policy node's commanding all read them from here.

- `ee_pose` (EndEffectorPose): proprio = measured TCP position (3) + rotation 6D (6) +
  gripper width (1); action = commanded TCP position + rotation 6D + gripper width, an
  absolute target for a Cartesian impedance controller (CRISP's `target_pose`).
  Recorded as `ee_pose` (x, y, z, qx, qy, qz, qw) and `command` (pose + width).
- `joint_position` (JointPosition): proprio = 7 measured joint positions + gripper
  width; action = 7 joint position targets + gripper width, for a joint trajectory
  controller. Recorded as `joint_states` (7 positions, 7 velocities) and
  `joint_command` (7 joint targets + width).

The gripper width is the opening, the sum of both fingers' positions, everywhere.
The 6D rotation is the first two columns of the rotation matrix: continuous, unlike Euler
angles or a quaternion's sign flip.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from policy.geometry import quat_to_rot6d, rot6d_to_quat
from policy.spec import ActionComponent, ActionSpec
from robots.franka import ARM_JOINTS

POSE_FIELDS = ("x", "y", "z", "qx", "qy", "qz", "qw")


@dataclass(frozen=True)
class StreamNames:
    """Which episode-store streams feed an embodiment's vectors. `command_gripper` is for
    recordings whose arm command has no width column (e.g. a bag with a separate gripper
    topic): the commanded width then comes from that stream."""

    state: str
    command: str
    gripper: str = "gripper"
    command_gripper: str | None = None

    def proprio_streams(self) -> tuple[str, ...]:
        return (self.state, self.gripper)

    def action_streams(self) -> tuple[str, ...]:
        return (self.command, *((self.command_gripper,) if self.command_gripper else ()))


class Embodiment(ABC):
    """One way of observing and commanding an arm with a gripper."""

    name: str
    action: ActionSpec
    proprio_names: tuple[str, ...]
    streams: StreamNames  # what the recorder and `dfstack collect-sim` write
    command_fields: tuple[str, ...]  # the stored command stream's columns (with the width last)

    @property
    def proprio_dim(self) -> int:
        return len(self.proprio_names)

    @abstractmethod
    def proprio(self, state: np.ndarray, gripper_width: np.ndarray) -> np.ndarray:
        """(n, state columns) measured state and (n, >=1) widths -> (n, proprio_dim) float32."""

    @abstractmethod
    def action_from_command(self, command: np.ndarray, gripper_width: np.ndarray | None = None) -> np.ndarray:
        """(n, command columns) stored commands (with the width last, or without it plus
        (n, 1) widths) -> (n, action dim) float32."""

    @abstractmethod
    def command_from_action(self, action: np.ndarray) -> np.ndarray:
        """(n, action dim) policy actions -> (n, command columns) in the stored layout."""

    def check_action(self, action: ActionSpec) -> None:
        if action != self.action:
            raise ValueError(
                f"embodiment {self.name!r} acts with [{self.action.describe()}], got [{action.describe()}]"
            )

    def describe(self) -> str:
        return f"{self.name}: proprio [{', '.join(self.proprio_names)}], action [{self.action.describe()}]"


def _widths(gripper_width: np.ndarray, rows: int) -> np.ndarray:
    return np.asarray(gripper_width, dtype=np.float64).reshape(rows, -1)[:, :1]


def _split_command(
    command: np.ndarray, arm_columns: int, gripper_width: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    command = np.asarray(command, dtype=np.float64)
    if gripper_width is not None:
        return command[..., :arm_columns], _widths(gripper_width, len(command))
    if command.shape[-1] < arm_columns + 1:
        raise ValueError(
            f"the command has {command.shape[-1]} values, no gripper width after the {arm_columns} arm "
            "values; name the stream with the commanded width (command_gripper)"
        )
    return command[..., :arm_columns], command[..., arm_columns : arm_columns + 1]


class EndEffectorPose(Embodiment):
    name = "ee_pose"
    action = ActionSpec(
        (ActionComponent("position", 3), ActionComponent("rotation_6d", 6), ActionComponent("gripper", 1))
    )
    proprio_names = ("x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper_width")
    streams = StreamNames(state="ee_pose", command="command")
    command_fields = (*POSE_FIELDS, "gripper_width")

    def proprio(self, state: np.ndarray, gripper_width: np.ndarray) -> np.ndarray:
        return np.concatenate([pose_to_vector(state), _widths(gripper_width, len(state))], axis=-1).astype(np.float32)

    def action_from_command(self, command: np.ndarray, gripper_width: np.ndarray | None = None) -> np.ndarray:
        pose, width = _split_command(command, 7, gripper_width)
        return np.concatenate([pose_to_vector(pose), width], axis=-1).astype(np.float32)

    def command_from_action(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        return np.concatenate([vector_to_pose(action[..., :9]), action[..., 9:10]], axis=-1)


class JointPosition(Embodiment):
    name = "joint_position"
    action = ActionSpec((ActionComponent("joints", ARM_JOINTS), ActionComponent("gripper", 1)))
    proprio_names = (*(f"joint{i}" for i in range(1, ARM_JOINTS + 1)), "gripper_width")
    streams = StreamNames(state="joint_states", command="joint_command")
    command_fields = (*(f"joint{i}" for i in range(1, ARM_JOINTS + 1)), "gripper_width")

    def proprio(self, state: np.ndarray, gripper_width: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64)
        if state.shape[-1] < ARM_JOINTS:
            raise ValueError(f"a joint state needs {ARM_JOINTS} positions first, got {state.shape[-1]} values")
        # joint_states holds the 7 positions first (then the velocities): see fr3_stream_specs.
        positions = state[..., :ARM_JOINTS]
        return np.concatenate([positions, _widths(gripper_width, len(state))], axis=-1).astype(np.float32)

    def action_from_command(self, command: np.ndarray, gripper_width: np.ndarray | None = None) -> np.ndarray:
        joints, width = _split_command(command, ARM_JOINTS, gripper_width)
        return np.concatenate([joints, width], axis=-1).astype(np.float32)

    def command_from_action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, dtype=np.float64).copy()


EMBODIMENTS: dict[str, type[Embodiment]] = {cls.name: cls for cls in (EndEffectorPose, JointPosition)}


def embodiment(name: str) -> Embodiment:
    try:
        return EMBODIMENTS[name]()
    except KeyError:
        raise ValueError(f"embodiment must be one of {sorted(EMBODIMENTS)}, got {name!r}") from None


def pose_to_vector(pose: np.ndarray) -> np.ndarray:
    """(n, 7) position + quaternion xyzw -> (n, 9) position + rotation 6D."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-1] != 7:
        raise ValueError(f"a pose has 7 values (x, y, z, qx, qy, qz, qw), got shape {pose.shape}")
    return np.concatenate([pose[..., :3], quat_to_rot6d(pose[..., 3:7])], axis=-1)


def vector_to_pose(vector: np.ndarray) -> np.ndarray:
    """(n, 9) position + rotation 6D -> (n, 7) position + quaternion xyzw (w >= 0)."""
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape[-1] != 9:
        raise ValueError(f"expected 9 values (position + rotation 6D), got shape {vector.shape}")
    return np.concatenate([vector[..., :3], rot6d_to_quat(vector[..., 3:9])], axis=-1)
