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
    assert (
        "jobs: training 1 cached, 0 run; evaluation 4 cached, 0 run" in again
        and json.loads(again.strip().splitlines()[-1])["table"] == summary["table"]
    )

    # A cached run made with other settings is retrained, and all its evaluations redone.
    settings_file = tmp_path / "runs" / "df-seed0" / "train_result.json.settings.json"
    settings_file.write_text(json.dumps({"demos": 4, "train_seconds": 1.0}))
    assert main(["--quick", "--variants", "df", "--out", str(tmp_path)]) == 0
    redone = capsys.readouterr().out
    assert "jobs: training 0 cached, 1 run; evaluation 0 cached, 4 run" in redone


def test_cached_result_counts_only_with_the_same_settings(tmp_path: Path) -> None:
    from benchmarks.bench_paper import Job

    output = tmp_path / "result.json"
    job = Job("train", "df", 0, ["true"], output, settings={"train_seconds": 900.0, "demos": 200})
    assert not job.is_cached()
    output.write_text("{}")
    assert not job.is_cached()  # a result without its settings (older benchmark) is redone
    job.settings_file.write_text(json.dumps(job.settings))
    assert job.is_cached()
    other = Job("train", "df", 0, ["true"], output, settings={"train_steps": 6000, "demos": 200})
    assert not other.is_cached()


def test_a_failed_training_skips_its_evaluations_and_fails_the_benchmark(tmp_path: Path) -> None:
    from benchmarks.bench_paper import Job, _run_pipeline

    failing = Job("train", "df", 0, ["false"], tmp_path / "a.json", log=tmp_path / "a.log")
    working = Job("train", "df", 1, ["true"], tmp_path / "b.json", log=tmp_path / "b.log")
    evaluated: list[int] = []

    def evaluations_of(train: Job) -> list[Job]:
        evaluated.append(train.seed)
        return [Job("evaluate", "df", train.seed, ["true"], tmp_path / "b-eval.json", "clean", tmp_path / "e.log")]

    with pytest.raises(SystemExit, match=r"1 job\(s\) failed: \['train df seed 0'\]"):
        _run_pipeline([failing, working], evaluations_of, parallel=2)
    assert evaluated == [1]  # only the run that trained is evaluated
    assert not failing.settings_file.exists() and working.settings_file.exists()


def test_a_change_of_the_training_defaults_invalidates_cached_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import bench_paper

    conf = tmp_path / "training" / "conf" / "optim"
    conf.mkdir(parents=True)
    (conf / "adamw.yaml").write_text("lr: 1.0e-3\n")
    monkeypatch.setattr(bench_paper, "ROOT", tmp_path)
    before = bench_paper._training_config_digest()
    assert bench_paper._training_config_digest() == before  # stable while nothing changes
    (conf / "adamw.yaml").write_text("# the default\nlr: 1.0e-3  # reworded comment\n")
    assert bench_paper._training_config_digest() == before  # comments are not settings
    (conf / "adamw.yaml").write_text("lr: 2.0e-3\n")
    assert bench_paper._training_config_digest() != before
