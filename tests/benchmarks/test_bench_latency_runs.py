import json

from benchmarks import bench_latency


def test_latency_benchmark_runs_and_ends_with_its_json_line(capsys):
    assert bench_latency.main(["--quick"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    for key in ("df_tick_p50_ms", "df_tick_p99_ms", "reference_tick_p50_ms", "speedup_p50"):
        assert result[key] > 0, key
