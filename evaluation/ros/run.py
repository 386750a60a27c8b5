"""`run_ros_episodes`: closed-loop evaluation through the ROS 2 nodes, `sim_robot_node`
(the simulated FR3) and `policy_node` (the DF policy), each in its own process
(evaluation.ros.processes), talking Fast DDS over loopback, watched by this process's
probe (evaluation.ros.probe) and driven episode by episode through their services
(evaluation.ros.episode).

The policy node runs on wall-clock time and stamps nothing itself; the simulated
robot stamps its messages with "ROS time at the episode start + sim time". The two
agree only at `real_time_factor` 1.0, the default.

DDS must stay on this machine: everything runs inside a private network namespace
(`scripts/in_netns.sh`), and `run_ros_episodes` refuses to start anywhere else.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaluation.conditions import (
    BUILTIN_CONDITIONS,
    DEFAULT_CONDITIONS,
    ConditionSpec,
    condition_plan,
    describe_condition,
)
from evaluation.results import ClosedLoopResults, ConditionResult, EpisodeOutcome, EpisodeTrace
from evaluation.rollout import check_fits_simulator
from evaluation.ros.episode import EpisodeDriver, NodeServices
from evaluation.ros.probe import Probe
from evaluation.ros.processes import (
    POLICY_NODE_MODULE,
    SIM_NODE_MODULE,
    ClosedLoopError,
    NodeProcesses,
    require_private_network,
)
from evaluation.ros.settings import (
    ClosedLoopSettings,
    policy_node_parameters,
    safety_limits,
    sim_node_parameters,
    simulated_robot_description,
)
from evaluation.sim_task import SimTaskSetup, checkpoint_sim_task, checkpoint_training_config, load_sim_task
from robots.description import load_robot_description
from sim.faults import FaultPlan


def read_checkpoint_spec(checkpoint: str | Path, setup: SimTaskSetup) -> Any:
    """The checkpoint's PolicySpec from its config.yaml (no torch needed); ValueError if it
    is missing or does not fit the simulated robot of `setup`."""
    import yaml

    from policy.spec import PolicySpec

    path = Path(checkpoint)
    config = path / "config.yaml"
    if not config.is_file():
        raise ValueError(
            f"checkpoint {path}: no config.yaml there (give a checkpoint directory, e.g. <run>/checkpoints/best)"
        )
    try:
        spec = PolicySpec.from_dict(yaml.safe_load(config.read_text())["spec"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        raise ValueError(f"checkpoint {path}: cannot read its spec from config.yaml: {error}") from error
    check_fits_simulator(spec, setup, path)
    return spec


def closed_loop_task(checkpoint: Path, settings: ClosedLoopSettings) -> SimTaskSetup:
    """The simulated task of the run: settings.task, else the checkpoint's own (with the
    robot description the settings name, if any)."""
    from robots.description import load_robot_description

    if settings.task is not None:
        setup = load_sim_task(settings.task)
    else:
        setup = checkpoint_sim_task(checkpoint_training_config(checkpoint), checkpoint)
    if settings.robot_description:
        setup = setup.with_robot(load_robot_description(settings.robot_description))
    return setup


def run_ros_episodes(
    checkpoint: str | Path,
    conditions: Mapping[str, ConditionSpec] | None = None,
    settings: ClosedLoopSettings | None = None,
    progress: bool | Callable[[EpisodeOutcome, dict[str, ConditionResult]], None] = True,
    log_dir: str | Path | None = None,
) -> ClosedLoopResults:
    """Run `settings.episodes_per_condition` episodes of each condition (default: clean and
    front camera occluded) through sim_robot_node and policy_node, started as child
    processes (their logs go to `log_dir`, default a temporary directory).

    `progress`: True prints a progress bar and one line per episode; a function is
    called after each episode with it and the results so far; False is silent.
    Raises PrivateNetworkError outside a private network namespace, ValueError for a
    checkpoint or condition that cannot run, ClosedLoopError when a node fails."""
    settings = settings or ClosedLoopSettings()
    checkpoint = Path(checkpoint)
    require_private_network()
    setup = closed_loop_task(checkpoint, settings)
    spec = read_checkpoint_spec(checkpoint, setup)
    if settings.real_time_factor != 1.0:
        warnings.warn(
            f"real_time_factor {settings.real_time_factor:g}: the policy node ticks on wall-clock time "
            "while the simulator stamps its messages in sim time, so the policy sees fewer tokens per sim second "
            "and its commands are scheduled against the wrong clock; results do not represent the product",
            stacklevel=2,
        )
    cameras = tuple(spec.camera_names)
    specs: dict[str, ConditionSpec] = (
        dict(conditions) if conditions is not None else {name: BUILTIN_CONDITIONS[name] for name in DEFAULT_CONDITIONS}
    )
    if not specs:
        raise ValueError("no conditions to run")
    seeds = [settings.seed + i for i in range(settings.episodes_per_condition)]
    # Every plan is built (and checked against the cameras) before any node starts.
    plans: dict[str, list[FaultPlan | None]] = {}
    for name, condition in specs.items():
        plans[name] = [condition_plan(condition, seed, settings.max_steps, cameras, setup.task) for seed in seeds]
        for plan in plans[name]:
            if plan is not None:
                plan.check_cameras(cameras)
    results = {name: ConditionResult(name, describe_condition(condition)) for name, condition in specs.items()}
    traces: dict[str, list[EpisodeTrace]] = {name: [] for name in specs}

    bar = None
    say: Callable[[str], None] = _silent
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=len(specs) * len(seeds), desc="ROS closed loop", unit="episode")
        say = bar.write
    log_path = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="ros_closed_loop_"))
    started = time.monotonic()
    processes = NodeProcesses(log_path)
    probe: Probe | None = None
    try:
        log_path.mkdir(parents=True, exist_ok=True)
        robot = simulated_robot_description(settings, log_path, setup.robot_path())
        task = setup.write_config(log_path / "task.yaml")  # the sim node composes it like any task config
        processes.start("sim_robot_node", SIM_NODE_MODULE, sim_node_parameters(settings, task, robot))
        processes.start("policy_node", POLICY_NODE_MODULE, policy_node_parameters(checkpoint, robot, settings))
        probe = Probe(load_robot_description(robot), cameras, safety_limits(robot, settings.policy_parameters))
        say("waiting for sim_robot_node and policy_node ...")
        services = NodeServices(probe.node, processes)
        K = _wait_until_ready(services, probe, processes, settings.startup_timeout_s)
        driver = EpisodeDriver(services, probe, settings, K)
        for name in specs:
            for index, seed in enumerate(seeds):
                kept = traces[name]
                wanted = settings.videos_per_condition
                successes_kept = sum(t.success for t in kept)
                record = wanted > 0 and (
                    len(kept) < wanted or (settings.video_prefer_success and successes_kept < wanted)
                )
                outcome = driver.run(name, index, seed, plans[name][index], record)
                results[name].episodes.append(outcome)
                if outcome.trace is not None:
                    _keep_trace(kept, outcome.trace, wanted)
                    outcome.trace = None  # kept (or not) in `traces` only: memory stays bounded
                if bar is not None:
                    bar.update(1)
                    say(_episode_line(name, seed, outcome, results[name]))
                    bar.set_postfix({n: f"{r.successes}/{len(r.episodes)}" for n, r in results.items()})
                elif callable(progress):
                    progress(outcome, results)
    finally:
        processes.stop()
        if probe is not None:
            probe.close()
        if bar is not None:
            bar.close()
    described = {**asdict(settings), "conditions": {name: results[name].description for name in specs}}
    described["task_title"] = setup.task.title
    described["log_dir"] = str(log_path)
    return ClosedLoopResults(
        checkpoint=str(checkpoint),
        cameras=cameras,
        max_level=int(K),
        settings=described,
        conditions=results,
        seconds=time.monotonic() - started,
        traces=traces,
    )


def _wait_until_ready(services: NodeServices, probe: Probe, processes: NodeProcesses, timeout_s: float) -> int:
    """Wait for every service and for the policy's first camera diagnostics (its checkpoint
    is loaded by then); returns K."""
    deadline = time.monotonic() + timeout_s
    for name, client in services.clients.items():
        while not client.wait_for_service(timeout_sec=0.5):
            processes.check_alive()
            if time.monotonic() > deadline:
                raise ClosedLoopError(
                    f"service {client.srv_name} ({name}) did not appear within {timeout_s} s" + processes.log_tails()
                )
    K = probe.wait_for_max_level(deadline, processes.check_alive)
    if K is None:
        raise ClosedLoopError("policy_node published no camera diagnostics in time" + processes.log_tails())
    return K


def _episode_line(name: str, seed: int, outcome: EpisodeOutcome, result: ConditionResult) -> str:
    return (
        f"{name:<10} seed {seed}: "
        + (f"success at {outcome.time_to_success_s:.1f} s" if outcome.success else outcome.ended_by)
        + f", {outcome.wall_s:.0f} s wall, ticks with k>0 {outcome.ticks_with_noise}/{outcome.ticks}, "
        f"unsafe {outcome.unsafe_commands + outcome.unsafe_gripper_commands}/"
        f"{outcome.commands + outcome.gripper_commands}  "
        f"[{name} {result.successes}/{len(result.episodes)}]"
    )


def _silent(line: str) -> None:
    pass


def _keep_trace(kept: list[EpisodeTrace], trace: EpisodeTrace, wanted: int) -> None:
    """Fill up to `wanted` traces; a successful episode replaces a failed one."""
    if len(kept) < wanted:
        kept.append(trace)
        return
    if trace.success:
        for i, old in enumerate(kept):
            if not old.success:
                kept[i] = trace
                return
