"""The policy as a robot-side agent: frame health, then the runner, once per tick.

This is the one place where camera frames turn into noise levels and noise levels
into the runner's observation. The ROS policy node and the in-process simulator
evaluation both drive the policy through it, so what is measured in simulation is
what runs on the robot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from policy.frame_health import CameraHealthMonitor, FrameHealth, HealthConfig
from policy.runner import ActionChunk, Observation, PolicyRunner


@dataclass
class CameraInput:
    """The newest frame of one camera: None when nothing arrived; `stamp` is its
    capture time (seconds, the same clock as the tick's `now`)."""

    frame: np.ndarray | None
    stamp: float | None
    decode_error: bool = False


@dataclass
class AgentTick:
    chunk: ActionChunk
    health: dict[str, FrameHealth]
    observation_stamp: float
    proprio_level: int
    # Camera name -> why its frame could not be used as an image (shape, crop): such a
    # frame counts as a decode error (k = K); the node logs the reason.
    frame_errors: dict[str, str] = field(default_factory=dict)


class PolicyAgent:
    def __init__(
        self,
        runner: PolicyRunner,
        health: HealthConfig | None = None,
        use_surprise: bool = False,
        proprio_stale_s: float = 0.2,
    ) -> None:
        """`use_surprise` compares each frame with the frame the model predicted for it
        (off by default: it is only as good as the model's frame prediction)."""
        self.runner = runner
        self.K = runner.K
        self.use_surprise = use_surprise
        self.proprio_stale_s = proprio_stale_s
        self.monitors = {name: CameraHealthMonitor(self.K, health) for name in runner.spec.camera_names}
        self._cameras = {camera.name: camera for camera in runner.spec.cameras}
        self._predicted: dict[str, np.ndarray] = {}

    def reset(self, seed: int | None = None) -> None:
        self.runner.reset(seed)
        for monitor in self.monitors.values():
            monitor.reset()
        self._predicted = {}

    def tick(
        self,
        now: float,
        cameras: Mapping[str, CameraInput],
        proprio: np.ndarray | None,
        proprio_stamp: float | None = None,
        executed_actions: np.ndarray | None = None,
    ) -> AgentTick:
        """Assess every camera, then run one policy tick.

        The observation time, from which the chunk is stamped, is the capture time of
        the newest usable frame (else the proprioception's, else `now`): a frame that
        took 100 ms to arrive yields actions already 100 ms due, and the command layer
        drops what has passed.
        """
        unknown = set(cameras) - set(self.monitors)
        if unknown:
            raise ValueError(f"cameras {sorted(unknown)} are not in the policy's spec {list(self.monitors)}")
        health: dict[str, FrameHealth] = {}
        frames: dict[str, np.ndarray | None] = {}
        usable_stamps: list[float] = []
        errors: dict[str, str] = {}
        for name, monitor in self.monitors.items():
            given = cameras.get(name, CameraInput(None, None))
            frame, decode_error = given.frame, given.decode_error
            if frame is not None:
                # Crop and resize once, here: frame health then looks at the pixels the model
                # sees (and costs ~0.3 ms instead of ~8 ms on a 640x480 frame).
                try:
                    frame = self._cameras[name].prepare(frame)
                except ValueError as error:
                    frame, decode_error, errors[name] = None, True, str(error)
            predicted = self._predicted.get(name) if self.use_surprise else None
            assessed = monitor.assess(frame, given.stamp, now, predicted, decode_error)
            health[name] = assessed
            frames[name] = frame if assessed.level < self.K else None
            if assessed.level < self.K and given.stamp is not None:
                usable_stamps.append(given.stamp)

        proprio_level = 0
        if proprio is None or (proprio_stamp is not None and now - proprio_stamp > self.proprio_stale_s):
            proprio, proprio_level = None, self.K
        if usable_stamps:
            stamp = max(usable_stamps)
        elif proprio is not None and proprio_stamp is not None:
            stamp = proprio_stamp
        else:
            stamp = now
        chunk = self.runner.step(
            Observation(
                stamp=stamp,
                frames=frames,
                frame_levels={name: h.level for name, h in health.items() if frames[name] is not None},
                proprio=proprio,
                proprio_level=proprio_level,
                executed_actions=executed_actions,
            )
        )
        self._predicted = chunk.predicted_frames
        return AgentTick(chunk, health, stamp, proprio_level, errors)
