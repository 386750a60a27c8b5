"""`make bench-latency` runs in its quick mode and ends with its JSON line: a shape check
(seconds). The figures themselves are the benchmark's, taken on a quiet machine."""

import json

from benchmarks import bench_latency


def test_latency_benchmark_runs_and_ends_with_its_json_line(capsys):
    assert bench_latency.main(["--quick", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("df_tick_p50_ms", "df_tick_p99_ms", "dp_reference_p50_ms", "threads", "loadavg_before", "busy"):
        assert key in result, key
    assert result["threads"] == [1] and result["df_tick_p50_ms"] > 0 and result["dp_reference_p50_ms"] > 0
    # A ratio only where the machine was quiet enough to mean something.
    assert (result["ratio_per_call_vs_dp"] is None) == result["busy"]
    assert (result["ratio_per_robot_second_vs_dp"] is None) == result["busy"]
    # The deployed swap-fruit policy, read from its configs (not a copy here).
    assert result["actions_per_token"] > 0 and result["token_period_s"] > 0
