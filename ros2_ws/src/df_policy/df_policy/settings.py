"""The policy node's own settings (the rest of its parameters are the core's config
dataclasses: runner, frame health, safety limits, watchdog). No ROS import: the
parameters, `--help` and docs/policy_node.md's table are generated from these fields."""

from __future__ import annotations

import math
from dataclasses import dataclass

from policy.config_io import documented

TICK_TRIGGERS = ("frames", "timer")
EXECUTORS = ("single", "multi")


@dataclass(frozen=True)
class PolicyNodeSettings:
    checkpoint: str = documented("", "checkpoint directory (required): the policy and all of its facts")
    robot_description: str = documented(
        "fr3_sim", "robot description: a name in robots/descriptions/ or a YAML file's path (cameras, topics, limits)"
    )
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
