"""In-process rollouts (evaluation.rollout) and `dfstack evaluate-sim`: closed-loop episodes
through PolicyAgent, Wilson intervals, CLI, and the evaluator the trainer is given."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dfstack.evaluate_sim import main
from evaluation.results import wilson_interval
from evaluation.rollout import EvalSettings
from policy.checkpoint import save_checkpoint
from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer
from policy.spec import CameraSpec, PolicySpec
from training.config import task_policy_spec

os.environ.setdefault("MUJOCO_GL", "egl")

SPEC = task_policy_spec(["task.image_size=16"])  # the swap-fruit task, on small frames
TINY = ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8, 16), frame_prediction_size=8, num_levels=100)


def _normalizer() -> Normalizer:
    """Ranges of the swap-fruit workspace (top-down rotation, gripper 0..8 cm)."""
    low = np.array([0.3, -0.25, 0.02, 1, 0, 0, 0, -1, 0, 0.0])
    high = np.array([0.6, 0.25, 0.30, 1, 0, 0, 0, -1, 0, 0.08])
    return Normalizer(low, high, low.copy(), high.copy())


def _checkpoint(path: Path, spec: PolicySpec | None = None) -> Path:
    torch.manual_seed(0)
    model = DFPolicyModel(spec or SPEC, TINY)
    return save_checkpoint(path, model, _normalizer(), config={"test": True})


def test_wilson_interval_matches_known_values() -> None:
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(95, 100) == pytest.approx((0.8882, 0.9785), abs=1e-4)


def test_named_fault_plans_are_seeded_and_of_one_kind() -> None:
    settings = EvalSettings(episodes=1, fault_plan="occlusion")
    plan = settings.episode_fault_plan(7, ("front", "wrist"))
    assert plan.events and {e.kind for e in plan.events} == {"occlusion"}
    assert plan.to_dict() == settings.episode_fault_plan(7, ("front", "wrist")).to_dict()
    assert not EvalSettings(episodes=1).episode_fault_plan(7, ("front", "wrist")).events
    with pytest.raises(ValueError, match="neither one of"):
        EvalSettings(fault_plan="earthquake")


@pytest.mark.sim
def test_cli_runs_episodes_and_writes_video_and_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _checkpoint(tmp_path / "ckpt")
    video, output = tmp_path / "eval.gif", tmp_path / "eval.json"
    steps = 2 * SPEC.actions_per_token  # two ticks
    argv = ["--checkpoint", str(checkpoint), "--episodes", "2", "--max-steps", str(steps), "--fault-plan", "hand"]
    assert main([*argv, "--video", str(video), "--output", str(output)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["successes"] == 0  # an untrained policy does not swap fruit
    assert summary["ci95"][0] == 0.0 and 0.6 < summary["ci95"][1] < 0.9
    assert video.stat().st_size > 0
    results = json.loads(output.read_text())
    episode = results["per_episode"][0]
    assert episode["steps"] == steps and episode["ticks"] == 2  # actions_per_token env steps per tick
    assert {e["kind"] for e in episode["fault_plan"]["events"]} == {"hand"}


def test_checkpoint_that_does_not_fit_the_simulated_robot_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    side_camera = replace(SPEC, cameras=(CameraSpec("front", 16, 16), CameraSpec("side", 16, 16)))
    checkpoint = _checkpoint(tmp_path / "ckpt", side_camera)
    assert main(["--checkpoint", str(checkpoint), "--episodes", "1"]) == 2
    assert "cameras ['side'] of the checkpoint are not on robot 'fr3_sim'" in capsys.readouterr().err


def _diverged(path: Path) -> None:
    """A run that diverged: 1000 NaN weights, saved normally (the manifest matches them)."""
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, TINY)
    with torch.no_grad():
        model.initial_latent.fill_(float("nan"))
        next(p for p in model.parameters() if p.numel() >= 1000).view(-1)[:1000] = float("nan")
    save_checkpoint(path, model, _normalizer())


def _truncated(path: Path) -> None:
    weights = _checkpoint(path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_diverged, r"model\.safetensors holds NaN or infinite values in 2 tensor\(s\)"),
        (_truncated, r"model\.safetensors is 100 bytes, manifest\.json records \d+: the file was cut short"),
    ],
    ids=["nan-weights", "truncated"],
)
def test_damaged_checkpoint_exits_non_zero_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object, message: str
) -> None:
    damage(tmp_path / "ckpt")  # type: ignore[operator]
    assert main(["--checkpoint", str(tmp_path / "ckpt"), "--episodes", "1"]) == 2
    captured = capsys.readouterr()
    assert re.search(r"^dfstack evaluate-sim: checkpoint .*ckpt: " + message, captured.err)
    assert "Traceback" not in captured.err and "success" not in captured.out


class _ExpertAgent:
    """An agent that plays the scripted expert: run_episode's scoring is checked on a
    policy known to solve the task."""

    K = 1000

    def __init__(self, env: object) -> None:
        from types import SimpleNamespace

        from sim.tasks.swap_fruit import ScriptedExpert

        self.expert = ScriptedExpert(env)
        self.runner = SimpleNamespace(spec=SPEC)

    def reset(self, seed: int) -> None:
        self.expert.reset()

    def tick(self, **_: object) -> object:
        from types import SimpleNamespace

        actions = [self.expert.act() for _ in range(self.runner.spec.actions_per_token)]
        return SimpleNamespace(health={}, chunk=SimpleNamespace(actions=actions, predicted_frames={}))


@pytest.mark.parametrize("stop_at_success", [True, False])
def test_episode_scoring_stops_at_success_or_checks_the_arm_stays_put(stop_at_success: bool) -> None:
    from evaluation.rollout import run_episode
    from robots.description import load_robot_description
    from sim.env import EnvConfig
    from sim.tasks.swap_fruit import SwapFruitEnv

    env = SwapFruitEnv(EnvConfig(image_size=16, sensor_noise_sigma=0.0))
    try:
        settings = EvalSettings(episodes=1, max_steps=240, stop_at_success=stop_at_success)
        result = run_episode(env, _ExpertAgent(env), 3, settings, load_robot_description("fr3_sim"))
    finally:
        env.close()
    assert result.success and result.first_success_step is not None and result.unsafe_actions == 0
    if stop_at_success:
        assert result.steps == result.first_success_step < 240
    else:  # the expert rests after finishing: success held and the arm still over the last 5 s
        assert result.steps == 240 and result.final_motion_m < 0.005


def test_unsafe_targets_are_named() -> None:
    from evaluation.rollout import unsafe_target_problems
    from evaluation.sim_task import load_sim_task

    limits = load_sim_task().robot.safety  # the default task's simulated robot

    rot6d = [1, 0, 0, 0, -1, 0]
    safe = np.array([0.5, 0.0, 0.2, *rot6d, 0.08])
    assert unsafe_target_problems(safe, None, 0.1, limits) == []
    along_x, along_z = np.eye(10)[0], np.eye(10)[2]
    assert unsafe_target_problems(safe, safe - 0.05 * along_x, 0.1, limits) == []  # 0.5 m/s
    assert "speed" in unsafe_target_problems(safe, safe - 0.2 * along_x, 0.1, limits)[0]  # 2 m/s
    assert "workspace" in unsafe_target_problems(safe + along_z, None, 0.1, limits)[0]
    assert unsafe_target_problems(safe * np.nan, None, 0.1, limits) == ["non-finite values"]
    assert unsafe_target_problems(safe + 0.002 * np.eye(10)[9], None, 0.1, limits) == []  # gripper: clamped, harmless
