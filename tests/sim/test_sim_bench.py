"""The simulator benchmark runs (quick mode) and the expert's 200-episode success (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.sim
def test_bench_sim_quick_prints_json_last() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_sim", "--quick", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["env_steps_per_s"] > 0 and summary["demos_100_seconds"] > 0
    assert summary["expert_success_rate"] == 1.0 and summary["quick"] is True


@pytest.mark.sim
@pytest.mark.slow
def test_expert_succeeds_in_at_least_98_percent_of_200_episodes() -> None:
    pytest.importorskip("mujoco")
    from sim.env import EnvConfig
    from sim.expert import run_expert_episode
    from sim.tasks.swap_fruit import SwapFruitEnv

    env = SwapFruitEnv(EnvConfig(cameras=()))
    results = [run_expert_episode(env, seed) for seed in range(200)]
    failed = [r["seed"] for r in results if not r["success"]]
    assert len(failed) <= 4, f"expert failed seeds {failed}"
    assert max(r["steps"] for r in results) <= 200
