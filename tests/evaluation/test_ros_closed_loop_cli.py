"""`python -m dfstack.ros_closed_loop` and evaluation.ros without DDS: the CLI's help and
refusals, and the conditions."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dfstack.ros_closed_loop import main
from evaluation.conditions import OCCLUDED_FRONT, condition_plan
from evaluation.rollout import EvalSettings
from evaluation.ros import ClosedLoopSettings, PrivateNetworkError, require_private_network
from evaluation.ros import run as ros_run
from sim.faults import FaultEvent, FaultPlan

ROOT = Path(__file__).resolve().parents[2]


def test_help_names_the_options_and_the_namespace() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dfstack.ros_closed_loop", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for word in ("--checkpoint", "--episodes", "--report-dir", "--conditions", "in_netns.sh", "occluded"):
        assert word in result.stdout


def test_refuses_to_open_dds_outside_a_private_namespace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(socket, "if_nameindex", lambda: [(1, "lo"), (2, "eth0")])
    with pytest.raises(PrivateNetworkError, match=r"scripts/in_netns\.sh"):
        require_private_network()
    assert main(["--checkpoint", str(tmp_path), "--episodes", "1", "--report-dir", str(tmp_path / "r")]) == 2


def test_bad_input_is_refused_before_any_node_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ros_run, "require_private_network", lambda: None)
    args = ["--checkpoint", str(tmp_path), "--report-dir", str(tmp_path / "r")]
    assert main([*args, "--conditions", "clean,foggy"]) == 2
    assert "unknown condition 'foggy'" in capsys.readouterr().err
    assert main(args) == 2
    assert "no config.yaml" in capsys.readouterr().err
    with pytest.raises(ValueError, match="episodes_per_condition"):
        ClosedLoopSettings(episodes_per_condition=0)


def test_conditions_reuse_the_evaluators_fault_plans() -> None:
    cameras = ("front", "wrist")
    assert condition_plan("clean", 7, 300, cameras) is None
    occluded = condition_plan("occluded", 7, 300, cameras)
    assert occluded == condition_plan(OCCLUDED_FRONT, 7, 300, cameras)  # drawn from the seed: repeatable
    blackouts = [e for e in occluded.events if e.kind == "blackout"]
    assert len(blackouts) == 2 and all(e.camera == "front" for e in blackouts)
    assert [e.kind for e in occluded.events].count("distractor") == 1
    assert occluded == EvalSettings(fault_plan="paper").episode_fault_plan(7, ("front",))
    assert condition_plan("occluded", 8, 300, cameras) != occluded
    fixed = FaultPlan((FaultEvent("hand", 1.0, 2.0, camera="wrist"),))
    assert condition_plan(fixed, 7, 300, cameras) is fixed
    assert condition_plan(lambda seed: None, 7, 300, cameras) is None
    with pytest.raises(ValueError, match="foggy"):
        condition_plan("foggy", 7, 300, cameras)
