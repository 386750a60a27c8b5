"""Crash benchmark: SIGKILL a recording process at random instants; committed episodes
must survive.

Each trial starts a child process that records short episodes into one shared store as
fast as the recorder allows (two cameras, 1 kHz state, commands), commits most, discards
some and deletes the last episode now and then; it logs each step to a journal *after*
the step returns (committed episodes with the checksums returned by the commit). The
parent kills it with SIGKILL at a random instant, then checks that:

* the store opens,
* every episode the journal says was committed (and not deleted since) is present and
  verifies against the checksums taken at commit (recomputed from the data),
* `repair` recovers or removes what the kill interrupted and leaves a store that
  validates (checksums included), without touching a committed episode.

The store is shared by all trials, so later kills also threaten earlier episodes.
The last printed line is one JSON object.

    python -m benchmarks.bench_crash              # 20 trials
    python -m benchmarks.bench_crash --quick      # 3 short trials (seconds)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def _child_streams() -> list[Any]:
    from data_collection.schema import fr3_stream_specs

    # Small frames keep each trial short; the code path is the one of 640x480 frames.
    return fr3_stream_specs(image_shape=(96, 128))


def run_child(store_path: Path, journal: Path, seed: int, durable: bool) -> None:
    """The recording process that gets killed."""
    from data_collection.recorder import Recorder
    from data_collection.schema import StoreSettings
    from data_collection.store import EpisodeStore

    rng = np.random.default_rng(seed)
    store = EpisodeStore.open_or_create(store_path, StoreSettings(policy_image_sizes=((32, 32),)), durable=durable)
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def note(event: str, **fields: Any) -> None:
        # One write() per line: a kill can lose the line, never tear an earlier one.
        os.write(fd, (json.dumps({"event": event, **fields}) + "\n").encode())

    now = [time.time()]
    recorder = Recorder(store, _child_streams(), clock=lambda: now[0])
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(8)]
    note("ready", pid=os.getpid())
    while True:
        episode_id = recorder.start_episode(task="crash benchmark")
        note("started", id=episode_id)
        ticks = int(rng.integers(10, 60))  # 0.1 to 0.6 s of data at 100 ticks/s
        for tick in range(ticks):
            now[0] += 0.01
            t = now[0]
            if tick % 3 == 0:
                recorder.add("front", t, frames[tick % 8])
                recorder.add("wrist", t, frames[(tick + 3) % 8])
            for k in range(10):
                stamp = t - 0.01 + (k + 1) * 0.001
                recorder.add("ee_pose", stamp, [0.5, 0.0, 0.4, 0.0, 0.0, 0.0, 1.0])
                recorder.add("joint_states", stamp, np.full(14, k, dtype=np.float64))
            recorder.add("command", t, [0.5, 0.0, 0.4, 0.0, 0.0, 0.0, 1.0, 0.04])
            recorder.add("teleop", t, np.zeros(7))
            if tick % 7 == 0:
                recorder.add("gripper", t, [0.04])
            time.sleep(0.002)
        if rng.random() < 0.1:
            note("discarding", id=episode_id)
            recorder.discard_episode()
            note("discarded", id=episode_id)
        else:
            note("stopping", id=episode_id)
            result = recorder.stop_episode(success=True)
            note("committed", id=result.episode_id, checksums=result.metadata.get("checksums", {}))
        if rng.random() < 0.1 and store.episode_ids():
            last = store.episode_ids()[-1]
            note("deleting", id=last)
            store.delete(last)
            note("deleted", id=last)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    events = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line cut by the kill
                events.append(json.loads(line))
    return events


def _phase(events: list[dict[str, Any]]) -> str:
    last = events[-1]["event"] if events else "startup"
    return {
        "ready": "startup",
        "started": "recording",
        "stopping": "committing",
        "discarding": "discarding",
        "deleting": "deleting",
    }.get(last, "between episodes")


def run_trial(store_path: Path, journal: Path, seed: int, delay_s: float, durable: bool) -> dict[str, Any]:
    from data_collection.store import EpisodeStore

    before = len(_read_journal(journal))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_crash",
            "--child",
            str(store_path),
            "--journal",
            str(journal),
            "--seed",
            str(seed),
        ]
        + ([] if durable else ["--not-durable"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(_read_journal(journal)) == before:  # wait for "ready": kill while writing, not importing
        if child.poll() is not None:
            raise RuntimeError(f"recording child exited early: {child.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise RuntimeError("recording child did not start within 60 s")
        time.sleep(0.02)
    time.sleep(delay_s)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    events = _read_journal(journal)
    result: dict[str, Any] = {"phase": _phase(events[before:])}
    try:
        store = EpisodeStore.open(store_path)
        result["opened"] = True
    except Exception as error:  # the benchmark's main failure: report it, do not stop
        result.update(opened=False, error=str(error))
        return result
    # Committed per the journal (over all trials), minus deleted ones.
    expected: dict[str, dict[str, Any]] = {}
    maybe_deleted: set[str] = set()
    for event in events:
        if event["event"] == "committed":
            expected[event["id"]] = event["checksums"]
        elif event["event"] == "deleting":
            maybe_deleted.add(event["id"])
        elif event["event"] == "deleted":
            expected.pop(event["id"], None)
            maybe_deleted.discard(event["id"])
    present = set(store.episode_ids())
    lost: list[str] = []
    for episode_id, checksums in expected.items():
        if episode_id not in present:
            if episode_id not in maybe_deleted:
                lost.append(f"{episode_id}: missing")
            continue
        problems = store.verify_episode(episode_id, checksums=True)
        stored = store.metadata(episode_id).get("checksums")
        if problems or stored != checksums:
            lost.append(f"{episode_id}: " + ("; ".join(problems) or "checksums differ from those taken at commit"))
    unlogged = sorted(present - set(expected))
    unlogged_bad = [e for e in unlogged if store.verify_episode(e, checksums=True)]
    result.update(
        expected=len(expected),
        lost=lost,
        unlogged=len(unlogged),
        unlogged_bad=unlogged_bad,
        staged=len(store.staged_ids()),
    )
    report = store.repair()
    result["repair"] = [str(a) for a in report.actions]
    result["repair_counts"] = dict(Counter(a.action for a in report.actions))
    result["valid_after_repair"] = bool(report.validation and report.validation.ok)
    if report.validation and not report.validation.ok:
        result["validation_errors"] = report.validation.errors[:5]
    # Repair must not have touched anything committed.
    after = set(store.episode_ids())
    result["lost_after_repair"] = [e for e in expected if e in present and e not in after]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20, help="number of kills (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 trials with short delays (a smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-delay", type=float, default=0.05, help="shortest time to the kill after start (s)")
    parser.add_argument("--max-delay", type=float, default=3.0, help="longest time to the kill after start (s)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the store (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the store and journal")
    parser.add_argument("--not-durable", action="store_true", help="skip the sync before each commit's rename")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    durable = not args.not_durable
    if args.child:
        run_child(args.child, args.journal, args.seed, durable)
        return 0
    trials = 3 if args.quick else args.trials
    max_delay = min(args.max_delay, 1.0) if args.quick else args.max_delay
    rng = random.Random(args.seed)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_crash_"))
    workdir.mkdir(parents=True, exist_ok=True)
    store_path, journal = workdir / "crash.zarr", workdir / "journal.jsonl"
    started = time.monotonic()
    results = []
    for trial in range(trials):
        delay = rng.uniform(args.min_delay, max_delay)
        result = run_trial(store_path, journal, seed=args.seed * 1000 + trial, delay_s=delay, durable=durable)
        results.append(result)
        print(
            f"trial {trial + 1}/{trials}: killed after {delay:.2f} s while {result['phase']}; "
            f"opened={result.get('opened')} committed={result.get('expected')} "
            f"lost={len(result.get('lost', []))} "
            f"repair={result.get('repair_counts')} valid={result.get('valid_after_repair')}",
            flush=True,
        )
        for line in result.get("lost", []) + result.get("validation_errors", []):
            print(f"    {line}", flush=True)
    from data_collection.store import EpisodeStore

    final_episodes = len(EpisodeStore.open(store_path).episode_ids()) if store_path.exists() else 0
    summary = {
        "trials": trials,
        "stores_opened": sum(bool(r.get("opened")) for r in results),
        "committed_episodes_lost": sum(len(r.get("lost", [])) + len(r.get("lost_after_repair", [])) for r in results),
        "committed_episodes_checked": sum(r.get("expected", 0) for r in results),
        "unlogged_committed_corrupt": sum(len(r.get("unlogged_bad", [])) for r in results),
        "repaired_valid": sum(bool(r.get("valid_after_repair")) for r in results),
        "repair_actions": dict(sum((Counter(r.get("repair_counts", {})) for r in results), Counter())),
        "kill_phases": dict(Counter(r["phase"] for r in results)),
        "episodes_in_store": final_episodes,
        "durable": durable,
        "seconds": round(time.monotonic() - started, 1),
    }
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary))
    ok = (
        summary["stores_opened"] == trials
        and summary["committed_episodes_lost"] == 0
        and summary["repaired_valid"] == trials
        and summary["unlogged_committed_corrupt"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
