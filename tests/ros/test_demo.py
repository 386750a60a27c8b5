"""`make demo` end to end at toy sizes: demonstrations through the recorder, a training
run of a fixed number of steps, closed-loop episodes through the ROS 2 nodes, and the
report folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfstack.demo import main

pytestmark = [pytest.mark.ros, pytest.mark.sim]


def test_demo_runs_every_stage_and_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    arguments = ["--out", str(out), "--demos", "2", "--train-steps", "3", "--episodes", "1", "--max-steps", "20"]
    tiny = ["model=tiny", "optim.batch_size=2", "task.val_fraction=0", "logging.progress=false", "logging.log_every=1"]
    code = main([*arguments, *(f"--train-override={o}" for o in tiny)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "this takes about" in printed and "[4/4] report" in printed
    report = out / "report"
    results = json.loads((report / "results.json").read_text())
    assert set(results["summary"]) == {"clean", "occluded"}
    assert all(c["episodes"] == 1 for c in results["summary"].values())
    assert (report / "training_curve.png").stat().st_size > 0
    assert list(report.glob("*.mp4")) or list(report.glob("*.gif"))
    assert (out / "run" / "metrics.jsonl").exists()
    assert json.loads((out / "run" / "train_result.json").read_text())["step"] == 3  # the work asked for, exactly
    # Fewer steps than the README's figures assume: the report says so.
    assert "fewer than the 4000 the README's figures assume" in (report / "summary.md").read_text()
    assert results["notes"] and "3 steps" in results["notes"][0]
    # A second run reuses the cached demonstrations and policy; another step count retrains.
    assert main([*arguments, *(f"--train-override={o}" for o in tiny)]) == 0
    assert "policy already trained 3 steps" in capsys.readouterr().out
    longer = [a if a != "3" else "4" for a in arguments]
    assert main([*longer, *(f"--train-override={o}" for o in tiny)]) == 0
    assert "trained 3 steps, not 4: training again" in capsys.readouterr().out
