"""The Diffusion Forcing paper's robot table, reproduced in simulation (`make bench-paper`).

DF policy vs a memoryless policy vs teacher forcing, each trained with several seeds on
the same scripted demonstrations, each evaluated in closed loop (in process, through
PolicyAgent: the ROS node's own frame-health + runner path) on

* clean episodes, and
* occluded episodes: the paper's robustness test, sim.faults.FaultPlan.occlusion_test
  (the front camera fully black for spans, and a distractor on the table). DF and the
  memoryless policy mark unusable frames k = K; teacher forcing must trust every frame;

and, for DF only,

* a run-time change of the sampling (autoregressive schedule, horizon 4, 4 steps instead
  of the trained-for pyramid/2/8), and
* episodes three times as long as a demonstration, scored at the end: the fruits must
  still be swapped, the arm still (final_motion_m) and no target unsafe.

Every stage is cached under --out: demonstrations, one run directory per (variant,
seed) and one JSON per evaluation, so an interrupted benchmark continues where it
stopped (delete a file to redo it). Each cached result records the settings it was
made with (training budget, episodes, demos); when they differ from this command's,
it is redone, and so is every evaluation of a retrained run. Training and evaluation
jobs run --jobs at a time, each on one CPU thread. Defaults: 200 demos, 3 seeds, 50
episodes per condition and seed, 15 minutes of training per run: about 2.5 hours on
2 cores.

Training is budgeted in wall-clock time (--train-seconds, equal compute per variant)
or in optimiser steps (--train-steps, equal updates per variant). Teacher forcing
encodes every frame twice per step, so in equal time it gets about a third of DF's
steps; --train-steps is the comparison that does not favour DF for being cheaper.

    python -m benchmarks.bench_paper                    # the whole table
    python -m benchmarks.bench_paper --seeds 1 --episodes 20 --train-seconds 600
    python -m benchmarks.bench_paper --train-steps 6000 # step-matched variants
    python -m benchmarks.bench_paper --quick            # minutes: a smoke test of the pipeline
    python -m benchmarks.bench_paper --task /path/to/my_task.yaml --out outputs/bench_my_task

`--task` runs another simulated task (a task config with a `sim:` section) through the
same variants and conditions; without it the presets' own task, swap fruit.

The last line printed is one JSON object with the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.sim_task import DEFAULT_TASK

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # variant -> hydra experiment preset
    "df": "swap_fruit",
    "memoryless": "swap_fruit_memoryless",
    "teacher_forcing": "swap_fruit_teacher_forcing",
}
PAPER_DF = {"clean": 80.0, "occluded": 76.0}  # Diffusion Forcing paper, real robot (../shared/ANCHORS.md)
GOALS = {"df_clean": 0.95, "df_occluded": 0.92, "memoryless_clean_max": 0.60}
DEMO_STEPS = 135  # a scripted demonstration lasts about 13.5 s (0.1 s steps)


@dataclass(frozen=True)
class Condition:
    name: str
    fault_plan: str = "none"
    max_steps: int = 300
    full_episodes: bool = False  # score the final state after max_steps (see EvalSettings.stop_at_success)
    runner: tuple[str, ...] = ()  # evaluate-sim runner arguments
    variants: tuple[str, ...] = tuple(VARIANTS)


CONDITIONS = (
    Condition("clean"),
    Condition("occluded", fault_plan="paper"),
    Condition(
        "clean_autoregressive_h4",
        runner=("--schedule", "autoregressive", "--horizon", "4", "--steps", "4"),
        variants=("df",),
    ),
    Condition("long_3x", max_steps=3 * DEMO_STEPS, full_episodes=True, variants=("df",)),
)


@dataclass
class Job:
    kind: str  # train | evaluate
    variant: str
    seed: int
    command: list[str]
    output: Path
    condition: str = ""
    log: Path = field(default_factory=Path)
    # What the output depends on: a cached output made with other settings is redone.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def settings_file(self) -> Path:
        return self.output.with_name(self.output.name + ".settings.json")

    def is_cached(self) -> bool:
        if not (self.output.exists() and self.settings_file.exists()):
            return False
        try:
            return json.loads(self.settings_file.read_text()) == self.settings
        except json.JSONDecodeError:
            return False


def _training_config_digest() -> str:
    """A digest of the trainer's config tree: a run cached under other defaults (a new
    learning rate, say) is retrained. The parsed values are hashed, not the bytes, so a
    reworded comment keeps the cache; so are the defaults the config schema takes from
    the policy's dataclasses (the objective's). Other code changes are not seen; `--out`
    elsewhere or deleting `runs/` redoes everything."""
    import yaml

    from training.schema import schema_defaults

    digest = hashlib.sha256()
    conf = ROOT / "training" / "conf"
    for path in sorted(conf.rglob("*.yaml")):
        values = json.dumps(yaml.safe_load(path.read_text()), sort_keys=True)
        digest.update(str(path.relative_to(conf)).encode() + b"\0" + values.encode())
    digest.update(json.dumps(schema_defaults(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _python() -> str:
    return sys.executable


def _collect(store: Path, episodes: int, task: str | None) -> None:
    from dfstack.collect_sim import SimCollectionConfig, ensure_demonstrations

    print(f"demonstrations: {episodes} scripted episodes in {store} ...", flush=True)
    try:
        summary = ensure_demonstrations(store, episodes, config=SimCollectionConfig(task=task or DEFAULT_TASK))
    except ValueError as error:
        raise SystemExit(f"bench-paper: {error}") from None
    print("  (cached)" if summary is None else summary.describe(), flush=True)


@dataclass(frozen=True)
class TrainBudget:
    """Either wall-clock seconds (the decay follows the clock) or optimiser steps."""

    seconds: float | None = 900.0
    steps: int | None = None

    def overrides(self) -> list[str]:
        if self.steps is not None:
            return ["time_budget_s=null", f"optim.total_steps={self.steps}"]
        # The time budget alone ends the run and paces the decay.
        return [f"time_budget_s={self.seconds}", "optim.total_steps=1000000"]

    def describe(self) -> dict[str, Any]:
        return {"train_steps": self.steps} if self.steps is not None else {"train_seconds": self.seconds}


def _train_job(
    out: Path,
    store: Path,
    variant: str,
    seed: int,
    budget: TrainBudget,
    demos: int,
    quick: bool,
    extra_overrides: Sequence[str] = (),
    task: str | None = None,
) -> Job:
    run_dir = out / "runs" / f"{variant}-seed{seed}"
    overrides = [
        f"experiment={VARIANTS[variant]}",
        # Another task replaces the presets' own (swap fruit); the evaluations run the
        # task each checkpoint was trained on.
        *([f"task={task}"] if task else []),
        f"task.dataset={store}",
        f"run_dir={run_dir}",
        f"seed={seed}",
        *(["time_budget_s=null", "optim.total_steps=30"] if quick else budget.overrides()),
        "optim.num_threads=1",
        "logging.progress=false",
        "overwrite=true",
    ]
    if quick:
        overrides += ["optim.warmup_steps=5", "optim.batch_size=4"]
    overrides += list(extra_overrides)
    command = [_python(), "-m", "training.train", *overrides, "--json"]
    from dfstack.collect_sim import SimCollectionConfig

    demonstrations = {"demos": demos, "hold_steps": SimCollectionConfig.extra_steps}
    settings = {**demonstrations, "config": _training_config_digest()}
    settings |= {"quick": True} if quick else budget.describe()
    if extra_overrides:
        settings["overrides"] = list(extra_overrides)
    if task:
        settings["task"] = task
    return Job(
        "train",
        variant,
        seed,
        command,
        run_dir / "train_result.json",
        log=run_dir.with_suffix(".log"),
        settings=settings,
    )


def _eval_job(out: Path, train: Job, condition: Condition, episodes: int, quick: bool = False) -> Job:
    variant, seed = train.variant, train.seed
    checkpoint = out / "runs" / f"{variant}-seed{seed}" / "checkpoints" / "latest"
    output = out / "eval" / f"{variant}-seed{seed}-{condition.name}.json"
    command = [
        _python(),
        "-m",
        "dfstack.evaluate_sim",
        "--checkpoint",
        str(checkpoint),
        "--episodes",
        str(episodes),
        "--fault-plan",
        condition.fault_plan,
        "--max-steps",
        str(condition.max_steps // 10 if quick else condition.max_steps),
        "--output",
        str(output),
        *(["--full-episodes"] if condition.full_episodes else []),
        *condition.runner,
    ]
    # The run's own result (step, losses) names the exact weights: a retrained run is re-evaluated.
    trained = json.loads(train.output.read_text()) if train.output.exists() else None
    settings = {"episodes": episodes, "condition": condition.name, "command": command[3:], "trained": trained}
    return Job("evaluate", variant, seed, command, output, condition.name, output.with_suffix(".log"), settings)


def _run_job(job: Job) -> tuple[Job, float, int]:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    started = time.perf_counter()
    with job.log.open("w") as log:
        completed = subprocess.run(job.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    if completed.returncode == 0:
        if job.kind == "train":
            lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
            job.output.write_text(lines[-1] if lines else "{}")
        job.settings_file.write_text(json.dumps(job.settings))
    return job, time.perf_counter() - started, completed.returncode


def _run_pipeline(trains: list[Job], evaluations_of: Callable[[Job], list[Job]], parallel: int) -> None:
    """Run the training jobs, and each run's evaluations as soon as that run is trained
    (queued behind the training still to start): with an odd number of runs a core does
    not idle until the last one ends. Cached jobs are skipped; a failed training skips
    its evaluations and ends the benchmark with an error once the rest is done."""
    started = time.perf_counter()
    counts = {"train": [0, 0], "evaluate": [0, 0]}  # kind -> [cached, run]
    failures: list[str] = []
    finished = 0
    with ThreadPoolExecutor(parallel) as pool:
        pending: set[Future[tuple[Job, float, int]]] = set()

        def submit(jobs: list[Job]) -> None:
            for job in jobs:
                counts[job.kind][1] += 1
                job.settings_file.unlink(missing_ok=True)  # a stale result must not be read if this job fails
                pending.add(pool.submit(_run_job, job))

        def evaluations_to_run(train: Job) -> list[Job]:
            evaluations = evaluations_of(train)
            counts["evaluate"][0] += sum(job.is_cached() for job in evaluations)
            return [job for job in evaluations if not job.is_cached()]

        # Training first (the pool runs jobs in the order submitted), then what cached runs still need.
        cached = [train for train in trains if train.is_cached()]
        counts["train"][0] = len(cached)
        submit([train for train in trains if not train.is_cached()])
        for train in cached:
            submit(evaluations_to_run(train))
        print(
            f"training: {counts['train'][0]} cached, {counts['train'][1]} to run, {parallel} at a time; "
            "each run is evaluated as soon as it is trained",
            flush=True,
        )
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.discard(future)
                job, seconds, code = future.result()
                finished += 1
                name = f"{job.kind} {job.variant} seed {job.seed}" + (f" {job.condition}" if job.condition else "")
                status = "ok" if code == 0 else f"FAILED (exit {code}; see {job.log})"
                progress = f"{finished} done, {len(pending)} queued, {(time.perf_counter() - started) / 60:.1f} min"
                print(f"  [{progress}] {name}: {status} in {seconds:.0f} s", flush=True)
                if code != 0:
                    failures.append(name)
                elif job.kind == "train":
                    submit(evaluations_to_run(job))
    print(
        f"jobs: training {counts['train'][0]} cached, {counts['train'][1]} run; "
        f"evaluation {counts['evaluate'][0]} cached, {counts['evaluate'][1]} run",
        flush=True,
    )
    if failures:
        raise SystemExit(f"bench-paper: {len(failures)} job(s) failed: {failures}")


def _steps_done(trains: list[Job]) -> dict[str, list[int]]:
    """Optimiser steps each run reached, per variant (how a time budget was spent)."""
    steps: dict[str, list[int]] = {}
    for job in trains:
        try:
            result = json.loads(job.output.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(result.get("step"), int):
            steps.setdefault(job.variant, []).append(result["step"])
    return steps


def _pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    from evaluation.results import wilson_interval

    successes = sum(int(r["successes"]) for r in results)
    episodes = sum(int(r["episodes"]) for r in results)
    low, high = wilson_interval(successes, episodes)
    per_seed = [r["successes"] / max(1, r["episodes"]) for r in results]
    row = {
        "successes": successes,
        "episodes": episodes,
        "success_rate": successes / max(1, episodes),
        "ci95": [round(low, 4), round(high, 4)],
        "per_seed": [round(p, 4) for p in per_seed],
        "seeds": len(results),
    }
    per_episode = [e for r in results for e in r.get("per_episode", [])]
    if per_episode:
        row["unsafe_actions"] = sum(int(e.get("unsafe_actions", 0)) for e in per_episode)
        motion = [e["final_motion_m"] for e in per_episode if e.get("final_motion_m") is not None]
        if motion:
            row["final_motion_m_max"] = round(max(motion), 4)
            row["final_motion_m_median"] = round(sorted(motion)[len(motion) // 2], 4)
    return row


def aggregate(out: Path, seeds: list[int], variants: list[str]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for condition in CONDITIONS:
        for variant in variants:
            if variant not in condition.variants:
                continue
            files = [out / "eval" / f"{variant}-seed{seed}-{condition.name}.json" for seed in seeds]
            results = [json.loads(f.read_text()) for f in files if f.exists()]
            if results:
                table.setdefault(variant, {})[condition.name] = _pool(results)
    return table


def format_table(table: dict[str, dict[str, Any]]) -> str:
    names = [c.name for c in CONDITIONS]
    lines = [f"{'variant':<16}" + "".join(f"{n:>28}" for n in names)]
    for variant, rows in table.items():
        cells = []
        for name in names:
            row = rows.get(name)
            if row is None:
                cells.append(f"{'-':>28}")
                continue
            low, high = row["ci95"]
            cell = f"{100 * row['success_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}] n={row['episodes']}"
            cells.append(f"{cell:>28}")
        lines.append(f"{variant:<16}" + "".join(cells))
    return "\n".join(lines)


def plot(table: dict[str, dict[str, Any]], path: Path, task: str = "swap fruit") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    conditions = ["clean", "occluded"]
    variants = [v for v in table if any(c in table[v] for c in conditions)]
    figure, axis = plt.subplots(figsize=(6.5, 3.6))
    width = 0.8 / max(1, len(variants))
    for index, variant in enumerate(variants):
        rates, errors = [], [[], []]
        for condition in conditions:
            row = table[variant].get(condition, {"success_rate": 0.0, "ci95": [0.0, 0.0]})
            rates.append(100 * row["success_rate"])
            errors[0].append(100 * (row["success_rate"] - row["ci95"][0]))
            errors[1].append(100 * (row["ci95"][1] - row["success_rate"]))
        x = np.arange(len(conditions)) + (index - (len(variants) - 1) / 2) * width
        axis.bar(x, rates, width, yerr=errors, capsize=3, label=variant)
    for index, condition in enumerate(conditions):  # the paper's real-robot DF result per condition
        axis.hlines(PAPER_DF[condition], index - 0.45, index + 0.45, colors="grey", linestyles=":", linewidth=1.2)
        axis.text(
            index + 0.45,
            PAPER_DF[condition] + 1.5,
            f"paper DF {PAPER_DF[condition]:.0f}%",
            fontsize=7,
            color="grey",
            ha="right",
        )
    axis.set_xticks(range(len(conditions)), conditions)
    axis.set_ylabel("success rate (%) with 95% CI")
    axis.set_ylim(0, 105)
    axis.set_title(f"{task} in simulation")
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(variants), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench-paper", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_paper", help="cache and results folder")
    parser.add_argument("--demos", type=int, default=200, help="scripted demonstrations (default 200)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per variant (default 3)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per condition and seed (default 50)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--train-seconds", type=float, help="training time per run, equal compute (default 900)")
    budget.add_argument("--train-steps", type=int, help="optimiser steps per run instead: equal updates per variant")
    parser.add_argument("--jobs", type=int, default=2, help="jobs at a time, one CPU thread each (default 2)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS)
    )
    parser.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hydra override for every training run, repeatable (an ablation: task.hold_tokens_after_end=0)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 4 demos, 1 seed, 30 training steps, 2 short episodes"
    )
    parser.add_argument(
        "--task",
        help="task config with a sim: section, a name in training/conf/task/ or a YAML path (default: the "
        f"presets' task, {DEFAULT_TASK}); use its own --out",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if args.quick:
        args.demos, args.seeds, args.episodes = 4, 1, 2
    if min(args.demos, args.seeds, args.episodes, args.jobs) < 1:
        parser.error("--demos, --seeds, --episodes and --jobs must be >= 1")
    if (args.train_seconds is not None and args.train_seconds <= 0) or (
        args.train_steps is not None and args.train_steps < 1
    ):
        parser.error("--train-seconds must be > 0 and --train-steps >= 1")
    budget = TrainBudget(
        seconds=None if args.train_steps is not None else (args.train_seconds or 900.0), steps=args.train_steps
    )
    os.environ.setdefault("MUJOCO_GL", "egl")
    out: Path = args.out
    bad = [o for o in args.train_override if "=" not in o]
    if bad:
        parser.error(f"--train-override takes KEY=VALUE hydra overrides, got {bad}")
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    store = out / "demos.zarr"
    _collect(store, args.demos, args.task)

    trains = [
        _train_job(out, store, v, s, budget, args.demos, args.quick, args.train_override, args.task)
        for v in variants
        for s in seeds
    ]
    _run_pipeline(
        trains,
        lambda train: [
            _eval_job(out, train, c, args.episodes, args.quick) for c in CONDITIONS if train.variant in c.variants
        ],
        args.jobs,
    )

    table = aggregate(out, seeds, variants)
    print(format_table(table))
    figure = plot(table, out / "success.png", *([args.task] if args.task else []))
    df = table.get("df", {})
    checks = {}
    if "clean" in df:
        checks["df_clean_goal_met"] = df["clean"]["success_rate"] >= GOALS["df_clean"]
    if "occluded" in df:
        checks["df_occluded_goal_met"] = df["occluded"]["success_rate"] >= GOALS["df_occluded"]
    if "clean" in table.get("memoryless", {}):
        checks["memoryless_below_goal"] = table["memoryless"]["clean"]["success_rate"] <= GOALS["memoryless_clean_max"]
    summary = {
        "task": args.task or DEFAULT_TASK,
        "table": table,
        "goals": GOALS,
        "checks": checks,
        "demos": args.demos,
        "seeds": args.seeds,
        "episodes_per_condition_and_seed": args.episodes,
        **budget.describe(),
        "train_steps_done": _steps_done(trains),
        "train_overrides": args.train_override,
        "plot": str(figure),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    print(f"plot: {figure}; results: {out / 'results.json'}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
