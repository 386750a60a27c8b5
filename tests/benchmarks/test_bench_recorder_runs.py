"""`make bench-recorder` runs end to end in its quick mode and ends with its JSON line.

A shape check only: how many samples a loaded machine drops is the benchmark's figure,
not a test (the exit code reports it, and this test only checks that it agrees)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.bench_recorder import main


def test_bench_recorder_quick_ends_with_a_json_line_that_its_exit_code_agrees_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--quick", "--seconds", "2", "--workdir", str(tmp_path), "--reader-seconds", "0.2"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("frames_offered", "frames_written", "dropped", "cpu_cores_used", "reader_samples_per_s", "verified"):
        assert key in summary, key
    assert summary["verified"] is True and summary["frames_written"] > 0 and summary["tokens"] > 0
    assert code == (0 if summary["dropped"] == 0 and summary["verified"] else 1)
