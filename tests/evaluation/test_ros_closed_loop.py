"""evaluation.ros over real DDS: sim_robot_node and policy_node started through
their own main() in child processes, one short clean and one occluded episode with a
tiny untrained policy (loopback only, inside a private network namespace)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.sim]

pytest.importorskip("rclpy")

from evaluation.report import write_report  # noqa: E402
from evaluation.ros import ClosedLoopSettings, run_ros_episodes  # noqa: E402
from policy.checkpoint import save_checkpoint  # noqa: E402
from policy.model import DFPolicyModel, ModelConfig  # noqa: E402
from policy.normalizer import Normalizer  # noqa: E402
from sim.faults import FaultEvent, FaultPlan  # noqa: E402
from training.config import task_policy_spec  # noqa: E402

POLICY_IMAGE = 16


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained weights (what is measured here does not depend on them) and an action
    range inside the workspace."""
    import torch

    torch.manual_seed(0)
    model = DFPolicyModel(
        task_policy_spec([f"task.image_size={POLICY_IMAGE}"]),
        ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8,), frame_prediction_size=8, num_levels=50),
    )
    low = np.array([0.4, -0.05, 0.25, -1, -1, -1, -1, -1, -1, 0.0])
    high = np.array([0.5, 0.05, 0.35, 1, 1, 1, 1, 1, 1, 0.08])
    return save_checkpoint(
        tmp_path_factory.mktemp("closed_loop") / "ckpt", model, Normalizer(low, high, low.copy(), high.copy())
    )


def test_clean_and_occluded_episodes_through_the_nodes(checkpoint: Path, tmp_path: Path) -> None:
    occluded = FaultPlan((FaultEvent("blackout", 1.0, 100.0, camera="front"),))
    settings = ClosedLoopSettings(episodes_per_condition=1, max_steps=40, sim_image_size=48, startup_timeout_s=90.0)
    seen: list[str] = []
    results = run_ros_episodes(
        checkpoint,
        {"clean": None, "occluded": occluded},
        settings,
        progress=lambda outcome, _: seen.append(outcome.condition),
        log_dir=tmp_path / "logs",
    )
    assert seen == ["clean", "occluded"]
    assert (tmp_path / "logs" / "policy_node.log").read_text().count("policy ready") == 1
    K = results.max_level
    assert K == 50
    clean, dark = results.conditions["clean"].episodes[0], results.conditions["occluded"].episodes[0]
    for episode in (clean, dark):
        assert not episode.success and episode.ended_by == "time_limit"  # untrained: the 4 s limit ends it
        assert episode.sim_time_s >= 4.0 - 1e-6
        assert episode.ticks >= 5  # 2.5 Hz for 4 s
        assert episode.commands > 50  # 50 Hz once enabled
        assert episode.unsafe_commands == 0 and episode.unsafe_gripper_commands == 0, episode.unsafe_examples
        assert episode.fault_plan == (occluded.to_dict() if episode is dark else None)
    assert dark.ticks_unusable_per_camera["front"] >= 3 and dark.max_level_per_camera["front"] == K
    assert dark.ticks_unusable_per_camera["wrist"] == 0
    # Both nodes run on the simulator's clock: a frame is exactly as old as the simulation
    # made it, however loaded the machine is, so no clean frame is ever doubted.
    assert clean.ticks_unusable_per_camera == {"front": 0, "wrist": 0}

    traces = {name: traces[0] for name, traces in results.traces.items()}
    for name, trace in traces.items():
        assert len(trace.frames["front"]) >= 30 and len(trace.frames["wrist"]) >= 30, name  # 10 Hz
        assert trace.frames["front"][0].image.shape == (48, 48, 3)
        assert len(trace.ticks) >= 5
        tick = trace.ticks[-1]
        assert set(tick.predicted) == {"front", "wrist"} and tick.predicted["front"].shape == (8, 8, 3)  # its own size
        assert all(level >= 0 for t in trace.ticks[1:] for level in t.levels.values())
    front_levels = [t.levels["front"] for t in traces["occluded"].ticks]
    assert front_levels[-1] == K and "black" in traces["occluded"].ticks[-1].issues["front"]
    assert {level for t in traces["clean"].ticks[1:] for level in t.levels.values()} == {0}
    # A blacked-out camera shows black frames; the model still predicts a frame for it.
    assert traces["occluded"].frames["front"][-1].image.max() == 0
    assert traces["occluded"].ticks[-1].predicted["front"].std() > 0

    written = write_report(tmp_path / "report", results)
    assert {"results", "summary", "still", "video:clean:100000", "video:occluded:100000"} <= set(written)


def test_a_loaded_machine_changes_no_frame_health_level(checkpoint: Path, tmp_path: Path) -> None:
    """The clean episode again with two CPU-bound processes beside it (the load a user's
    laptop has): on the simulator's clock every frame still enters at k = 0."""
    settings = ClosedLoopSettings(episodes_per_condition=1, max_steps=30, sim_image_size=48, startup_timeout_s=180.0)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        results = run_ros_episodes(checkpoint, {"clean": None}, settings, progress=False, log_dir=tmp_path / "logs")
    finally:
        for process in busy:
            process.kill()
            process.wait()
    episode = results.conditions["clean"].episodes[0]
    assert episode.ended_by == "time_limit" and episode.sim_time_s >= 3.0 - 1e-6
    assert episode.ticks_with_noise_per_camera == {"front": 0, "wrist": 0}, episode.max_level_per_camera
    assert episode.unsafe_commands == 0
