"""The one place that turns recorded streams into the policy's vectors (and back).

proprio = measured end-effector position (3) + rotation 6D (6) + gripper width (1)
action  = commanded end-effector position (3) + rotation 6D (6) + gripper width (1)

matching `policy.spec.swap_fruit_spec` (proprio_names) and
`policy.spec.franka_ee_action_spec` (position, rotation_6d, gripper). Poses are stored
as position + quaternion (x, y, z, w), as geometry_msgs carries them; the 6D rotation is
computed here with `policy.geometry`, so the conversion is identical everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policy.geometry import quat_to_rot6d, rot6d_to_quat
from policy.spec import PolicySpec


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


@dataclass(frozen=True)
class FeatureMapping:
    """Which streams feed proprioception and actions. `command_gripper_stream` is for
    recordings whose pose command has no gripper column (7 values, e.g. a bag with a
    separate gripper topic): the width then comes from that stream."""

    ee_pose_stream: str = "ee_pose"
    gripper_stream: str = "gripper"
    command_stream: str = "command"
    command_gripper_stream: str | None = None

    @property
    def proprio_dim(self) -> int:
        return 10

    @property
    def action_dim(self) -> int:
        return 10

    def proprio_streams(self) -> tuple[str, ...]:
        return (self.ee_pose_stream, self.gripper_stream)

    def action_streams(self) -> tuple[str, ...]:
        extra = (self.command_gripper_stream,) if self.command_gripper_stream else ()
        return (self.command_stream, *extra)

    def check(self, spec: PolicySpec) -> None:
        """Raise ValueError if the policy expects other vector sizes than this mapping makes."""
        problems = []
        if spec.proprio_dim != self.proprio_dim:
            problems.append(f"proprio_dim {spec.proprio_dim} (this mapping makes {self.proprio_dim})")
        if spec.action.dim != self.action_dim:
            problems.append(f"action dim {spec.action.dim} (this mapping makes {self.action_dim})")
        if problems:
            raise ValueError("policy spec does not fit the stream mapping: " + "; ".join(problems))

    def proprio(self, ee_pose: np.ndarray, gripper_width: np.ndarray) -> np.ndarray:
        """(n, 7) poses and (n, 1) widths -> (n, 10) float32."""
        width = np.asarray(gripper_width, dtype=np.float64).reshape(len(ee_pose), -1)[:, :1]
        return np.concatenate([pose_to_vector(ee_pose), width], axis=-1).astype(np.float32)

    def action(self, command: np.ndarray, gripper_width: np.ndarray | None = None) -> np.ndarray:
        """(n, 8) commands (pose + width), or (n, 7) poses plus (n, 1) widths -> (n, 10)."""
        command = np.asarray(command, dtype=np.float64)
        if gripper_width is None:
            if command.shape[-1] < 8:
                raise ValueError(
                    f"command stream {self.command_stream!r} has {command.shape[-1]} values, "
                    "no gripper "
                    "width; set command_gripper_stream"
                )
            width = command[..., 7:8]
        else:
            width = np.asarray(gripper_width, dtype=np.float64).reshape(len(command), -1)[:, :1]
        return np.concatenate([pose_to_vector(command[..., :7]), width], axis=-1).astype(np.float32)

    @staticmethod
    def action_to_command(action: np.ndarray) -> np.ndarray:
        """(n, 10) policy actions -> (n, 8) position + quaternion xyzw + gripper width."""
        action = np.asarray(action, dtype=np.float64)
        return np.concatenate([vector_to_pose(action[..., :9]), action[..., 9:10]], axis=-1)
