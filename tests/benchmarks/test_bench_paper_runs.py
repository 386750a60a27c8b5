"""`make bench-paper` runs end to end (its --quick smoke mode) and prints its JSON table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.bench_paper import main

pytestmark = pytest.mark.sim


def test_bench_paper_quick_runs_and_reports_every_condition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--variants", "df", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = summary["table"]["df"]
    assert set(rows) == {"clean", "occluded", "clean_autoregressive_h4", "long_3x"}
    assert all(row["episodes"] == 2 and 0.0 <= row["success_rate"] <= 1.0 for row in rows.values())
    assert "df_clean_goal_met" in summary["checks"] and (tmp_path / "success.png").stat().st_size > 0
    # Everything is cached: a second run does no work and gives the same table.
    assert main(["--quick", "--variants", "df", "--out", str(tmp_path)]) == 0
    again = capsys.readouterr().out
    assert "0 to run" in again and json.loads(again.strip().splitlines()[-1])["table"] == summary["table"]
