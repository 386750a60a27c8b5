"""The one place that turns recorded streams into the policy's vectors (and back).

Which streams are read is a `robots.embodiment.StreamNames`; what the vectors are (and
the pose and rotation conversions) is the embodiment's (`robots.embodiment`): an
end-effector pose policy reads `ee_pose` + `gripper` and the `command` stream, a
joint-space policy `joint_states` + `gripper` and `joint_command`. Poses are stored as
position + quaternion (x, y, z, w), as geometry_msgs carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from policy.spec import PolicySpec
from robots.embodiment import Embodiment, EndEffectorPose, StreamNames, embodiment

from .schema import StreamSpec


@dataclass(frozen=True)
class FeatureMapping:
    """An embodiment and the store streams its vectors are read from (by default the
    streams the recorder and `dfstack collect-sim` write for that embodiment)."""

    embodiment: Embodiment = field(default_factory=EndEffectorPose)
    stream_names: StreamNames | None = None

    @classmethod
    def for_spec(cls, spec: PolicySpec, stream_names: StreamNames | None = None) -> FeatureMapping:
        return cls(embodiment(spec.embodiment), stream_names)

    @property
    def streams(self) -> StreamNames:
        return self.stream_names or self.embodiment.streams

    @property
    def proprio_dim(self) -> int:
        return self.embodiment.proprio_dim

    @property
    def action_dim(self) -> int:
        return self.embodiment.action.dim

    def proprio_streams(self) -> tuple[str, ...]:
        return self.streams.proprio_streams()

    def action_streams(self) -> tuple[str, ...]:
        return self.streams.action_streams()

    def check(self, spec: PolicySpec) -> None:
        """Raise ValueError naming every way the policy's vectors differ from this mapping's."""
        problems = []
        if spec.embodiment != self.embodiment.name:
            problems.append(f"embodiment {spec.embodiment!r} (this mapping reads {self.embodiment.name!r})")
        if spec.proprio_dim != self.proprio_dim:
            problems.append(f"proprio_dim {spec.proprio_dim} (this mapping makes {self.proprio_dim})")
        if spec.action != self.embodiment.action:
            made = self.embodiment.action.describe()
            problems.append(f"action [{spec.action.describe()}] (this mapping makes [{made}])")
        if problems:
            raise ValueError("policy spec does not fit the stream mapping: " + "; ".join(problems))

    def stream_problems(self, specs: Mapping[str, StreamSpec]) -> list[str]:
        """Why the streams of one episode (name -> spec) cannot feed this mapping's vectors:
        a stream missing, a gripper stream that is not one width, a command without a width
        and no `command_gripper`, a state too short."""
        names = self.streams
        missing = [s for s in dict.fromkeys((*self.proprio_streams(), *self.action_streams())) if s not in specs]
        if missing:
            return [f"lacks the stream(s) {missing} that proprioception and actions are read from"]
        problems = []
        arm_columns = len(self.embodiment.command_fields) - 1
        for role in ("gripper", "command_gripper"):
            name = getattr(names, role)
            if name and specs[name].shape != (1,):
                problems.append(
                    f"{role} stream {name!r} has {specs[name].shape[0]} values ({', '.join(specs[name].fields)}); "
                    "a gripper stream holds one width, the sum of both fingers"
                )
        command = specs[names.command]
        if names.command_gripper is None and command.shape[0] < arm_columns + 1:
            problems.append(
                f"command stream {names.command!r} has {command.shape[0]} values, no gripper width after the "
                f"{arm_columns} arm values; name the stream with the commanded width (command_gripper)"
            )
        elif command.shape[0] < arm_columns:
            problems.append(f"command stream {names.command!r} has {command.shape[0]} values, fewer than {arm_columns}")
        return problems

    def proprio(self, state: np.ndarray, gripper_width: np.ndarray) -> np.ndarray:
        return self.embodiment.proprio(state, gripper_width)

    def action(self, command: np.ndarray, gripper_width: np.ndarray | None = None) -> np.ndarray:
        try:
            return self.embodiment.action_from_command(command, gripper_width)
        except ValueError as error:
            raise ValueError(f"{error} (stream {self.streams.command!r})") from error

    def action_to_command(self, action: np.ndarray) -> np.ndarray:
        return self.embodiment.command_from_action(action)
