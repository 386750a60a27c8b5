"""`dfstack collect-sim`: scripted-expert demonstrations recorded through the real recorder.

    dfstack collect-sim --store outputs/swap_fruit.zarr --episodes 100 --processes 2
    dfstack collect-sim --task /path/to/my_task.yaml --store my_task.zarr --episodes 50

The task config (`--task`, a name in training/conf/task/ or a YAML file; default
swap_fruit_sim) names the simulated task (its `sim:` section: scene, expert, success
test) and the robot description, which gives the cameras with their native sizes and
rates, the state rates and the embodiment. The simulated robot (`sim.hil.SimulatedRobot`)
runs in-process, without ROS, and its samples go through `data_collection.Recorder`
exactly as the ROS recorder node feeds them: the same streams (`fr3_stream_specs`), each
sample stamped with the sim time at which the robot would publish it (each camera at its
rate, end-effector pose and joint states at the state rate, gripper at its rate), the
commanded target at the moment it is sent, and a teleop stream holding the twist that
would have produced the expert's target sequence. A store written here is read by the
same code as a teleoperated one.

Both action labels are recorded, whatever the robot's embodiment: `command` (the
expert's end-effector target and gripper width) and `joint_command` (the joints that
reach it, from the simulator's IK, and the width), so one store trains an `ee_pose` or a
`joint_position` policy. The arm is driven the way the robot description says: pose
targets for `ee_pose`, the joint targets for `joint_position`.

Processes: with `--processes 1` one process simulates and records (samples are streamed
into the recorder as they are produced). With P > 1, P worker processes simulate
episodes (rendering dominates the cost) and hand each finished episode's samples to the
parent, which is the store's single writer (the store's lock allows one) and records
them in seed order, so the store is the same whatever P is.

Stamps are sim time since the episode's reset (s); the episode metadata says so
(`stamp_timebase`). A ROS session stamps with ROS time; the reader only uses differences.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.sim_task import DEFAULT_TASK, SimTaskSetup

# Offscreen rendering and one llvmpipe thread per process (N processes use N cores);
# both must be set before mujoco creates a GL context.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")

STAMP_TIMEBASE = "sim time since the episode reset (s)"

# (stream, stamp_s, value) in the order a ROS subscriber would receive them.
Sample = tuple[str, float, Any]
Emit = Callable[[str, float, Any], None]


@dataclass(frozen=True)
class SimCollectionConfig:
    """How episodes are simulated. Cameras, sizes and rates are the task's robot
    description's (what sim_robot_node publishes for it)."""

    task: str = DEFAULT_TASK  # a task config: a name in training/conf/task/ or a YAML path
    image_size: int | None = None  # None: each camera at its native size; N: every camera N x N
    max_steps: int = 300  # expert actions (0.1 s each) before an episode is cut off
    # Actions holding the rest pose after the expert is done. The policy learns to stay
    # from these alone; with 12 (1.5 tokens) it finished swap fruit in 16 of 20 episodes
    # three times a demonstration long but kept none still to the end.
    extra_steps: int = 30

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"image_size must be >= 8 px, got {self.image_size}")
        if self.max_steps < 1 or self.extra_steps < 0:
            raise ValueError(
                f"max_steps must be >= 1 and extra_steps >= 0, got {self.max_steps} and {self.extra_steps}"
            )


@dataclass
class SimEpisodeResult:
    """What one simulated episode was, besides its samples."""

    seed: int
    success: bool
    steps: int
    sim_time_s: float
    failed_picks: int
    info: dict[str, Any]
    report: dict[str, Any]
    initial_configuration: dict[str, Any]
    # (steps, 10) the expert's end-effector labels, (steps, 8) the joint labels (joints
    # and width) and (steps,) the sim time each was sent at.
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 10)))
    joint_labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 8)))
    label_times: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    simulate_s: float = 0.0


@dataclass
class CollectSummary:
    """The result of a collection (printed by the CLI, returned by `collect_sim`)."""

    store: str
    requested: int
    committed: int
    successes: int
    marked: int
    episode_ids: list[str]
    seeds: list[int]
    failed_seeds: list[int]
    problems: dict[str, list[str]]
    wall_s: float
    episodes_per_s: float
    sim_time_s: float
    frames: int
    samples: int
    dropped: int
    store_bytes: int
    processes: int
    task: str
    cameras: dict[str, list[int]]  # camera -> [height, width] recorded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        lines = [
            f"collect-sim: {self.committed}/{self.requested} episodes committed to {self.store} in "
            f"{self.wall_s:.1f} s ({self.episodes_per_s:.2f} episodes/s, {self.processes} process(es))",
            f"  task {self.task}, cameras "
            + ", ".join(f"{name} {height}x{width} px" for name, (height, width) in self.cameras.items()),
            f"  expert success: {self.successes}/{self.committed}"
            + (f" (failed seeds {self.failed_seeds})" if self.failed_seeds else ""),
            f"  sim time {self.sim_time_s:.0f} s ({self.sim_time_s / max(self.wall_s, 1e-9):.1f}x real time), "
            f"{self.frames} camera frames, {self.samples} samples, {self.dropped} dropped",
            f"  store now {self.store_bytes / 1e6:.1f} MB on disk",
            f"  marked episodes (recorder problems): {self.marked}",
        ]
        for episode_id, problems in self.problems.items():
            lines += [f"    {episode_id}: {p}" for p in problems]
        lines.append(f"  inspect: python -m data_collection.cli info {self.store}")
        return "\n".join(lines)


# ------------------------------------------------------------------ simulation


def _angular_velocity(previous: np.ndarray, current: np.ndarray, dt: float) -> np.ndarray:
    """Base-frame angular velocity (rad/s) turning `previous` into `current` in dt: the
    rotation vector of current @ previous.T (the twist TeleopIntegrator(frame="base")
    integrates)."""
    relative = current @ previous.T
    cos = float(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    axis = np.array([relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0], relative[1, 0] - relative[0, 1]])
    norm = float(np.linalg.norm(axis))
    if norm < 1e-12:  # angle near pi: the axis is the dominant column of R + I
        column = np.argmax(np.diag(relative))
        axis = relative[:, column] + np.eye(3)[:, column]
        norm = float(np.linalg.norm(axis))
    return axis / norm * angle / dt


class _RobotRunner:
    """One process's simulated robot (one OpenGL context, reused across episodes)."""

    def __init__(self, setup: SimTaskSetup, config: SimCollectionConfig) -> None:
        from sim.hil import SimulatedRobot

        self.config = config
        self._last_quat: np.ndarray | None = None
        self.joint_space = setup.robot.embodiment == "joint_position"
        self.robot = SimulatedRobot(
            setup.env_config(image_size=config.image_size),
            # The expert's targets are 0.1 s apart, each reached over one step, as
            # SimEnv.step does (the labels are the same as run_expert_episode's).
            setup.hil_config(target_interpolation_s=0.1),
            setup.task,
        )

    def describe(self) -> dict[str, Any]:
        return self.robot.env.describe()

    def run(self, seed: int, emit: Emit) -> SimEpisodeResult:
        """Reset with `seed`, run the scripted expert to the end and emit every sample."""
        from policy.geometry import matrix_to_quat

        started = time.perf_counter()
        robot, env, config = self.robot, self.robot.env, self.config
        info = robot.reset(seed)
        expert = env.task.expert(env)
        expert.reset()
        state = env.robot_state()
        self._last_quat = None
        step_period = env.config.step_period_s
        ticks_per_step = round(step_period / robot.control_period_s)
        gripper_speed = 0.1  # TeleopLimits.gripper_speed: a gripper input of 1 moves 0.1 m/s
        previous_position, previous_rotation = state.ee_position.copy(), state.ee_rotation.copy()
        previous_width = state.gripper_width
        labels, joint_labels, label_times = [], [], []
        steps, remaining = 0, config.extra_steps
        while steps < config.max_steps:
            action = expert.act()
            if expert.done:
                if remaining <= 0:
                    break
                remaining -= 1
            position, rotation, width = env.parse_action(action)
            quat = matrix_to_quat(rotation)
            if self._last_quat is None:
                # Measured quaternions start in the hemisphere of the first target's
                # orientation, so recorded pose and command agree in sign.
                self._last_quat = quat
            # The joints that reach the target: the joint-space label, and what a
            # joint-space robot is commanded (the simulator's IK from where the arm is heading).
            joints = env.joint_target_for(position, rotation)
            now = robot.time
            if self.joint_space:
                robot.set_joint_target(joints)
            else:
                robot.set_target_pose(position, quat)
            robot.set_gripper_width(width)
            labels.append(np.asarray(action, dtype=np.float64))
            joint_labels.append(np.concatenate([joints, [width]]))
            label_times.append(now)
            emit("command", now, np.concatenate([position, quat, [width]]))
            emit("joint_command", now, joint_labels[-1])
            twist = np.concatenate(
                [
                    (position - previous_position) / step_period,
                    _angular_velocity(previous_rotation, rotation, step_period),
                    [float(np.clip((width - previous_width) / step_period / gripper_speed, -1.0, 1.0))],
                ]
            )
            emit("teleop", now, twist)
            previous_position, previous_rotation, previous_width = position, rotation, width
            for _ in range(ticks_per_step):
                self._emit_tick(robot.tick(), emit)
            steps += 1
        report = robot.success_report()
        initial_quat = state.ee_quat_xyzw
        if self._last_quat is not None and float(initial_quat @ self._last_quat) < 0:
            initial_quat = -initial_quat
        initial = {
            "ee_pose": [*state.ee_position.tolist(), *initial_quat.tolist()],
            "joint_states": [*state.joint_positions.tolist(), *state.joint_velocities.tolist()],
            "gripper": [state.gripper_width],
            "scene": info.to_dict(),
        }
        return SimEpisodeResult(
            seed=seed,
            success=bool(report["success"]),
            steps=steps,
            sim_time_s=robot.time,
            failed_picks=expert.failed_picks,
            info=info.to_dict(),
            report=report,
            initial_configuration=initial,
            labels=np.asarray(labels).reshape(-1, 10),
            joint_labels=np.asarray(joint_labels).reshape(-1, 8),
            label_times=np.asarray(label_times, dtype=np.float64),
            simulate_s=time.perf_counter() - started,
        )

    def _emit_tick(self, output: Any, emit: Emit) -> None:
        from policy.geometry import matrix_to_quat

        if output.state is not None:
            state = output.state.state
            stamp = output.state.time
            quat = matrix_to_quat(state.ee_rotation)
            # q and -q are the same rotation; keep the sign continuous so the recorded
            # components do not jump between +-1 when w is near 0 (a top-down grasp).
            if self._last_quat is not None and float(quat @ self._last_quat) < 0:
                quat = -quat
            self._last_quat = quat
            emit("ee_pose", stamp, np.concatenate([state.ee_position, quat]))
            emit("joint_states", stamp, np.concatenate([state.joint_positions, state.joint_velocities]))
        if output.gripper is not None:
            emit("gripper", output.gripper.time, [float(np.sum(output.gripper.finger_positions))])
        for frame in output.cameras:
            # The capture stamp (a delayed frame carries an older one), as a camera driver does.
            emit(frame.camera, frame.stamp, frame.image)

    def close(self) -> None:
        self.robot.close()


def simulate_episode(seed: int, config: SimCollectionConfig | None = None) -> tuple[SimEpisodeResult, list[Sample]]:
    """Simulate one expert episode and return its result and samples, in emission order
    (a fresh simulator; for many episodes `collect_sim` reuses one per process)."""
    from evaluation.sim_task import load_sim_task

    config = config or SimCollectionConfig()
    runner = _RobotRunner(load_sim_task(config.task), config)
    samples: list[Sample] = []
    try:
        result = runner.run(seed, lambda stream, stamp, value: samples.append((stream, stamp, value)))
    finally:
        runner.close()
    return result, samples


# Worker processes: one runner each, created by the pool initializer.
_worker_runner: _RobotRunner | None = None


def _init_worker(setup: SimTaskSetup, config: SimCollectionConfig) -> None:
    global _worker_runner
    _worker_runner = _RobotRunner(setup, config)


def _worker_episode(seed: int) -> tuple[SimEpisodeResult, list[Sample]]:
    assert _worker_runner is not None, "worker not initialised"
    samples: list[Sample] = []
    result = _worker_runner.run(seed, lambda stream, stamp, value: samples.append((stream, stamp, value)))
    return result, samples


# -------------------------------------------------------------------- recording


class _SimClock:
    """The recorder's clock in the stamps' timebase: the newest sim time fed so far (so
    stall detection measures sim time, however fast the simulation runs)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def camera_shapes(setup: SimTaskSetup, config: SimCollectionConfig) -> dict[str, tuple[int, int]]:
    """(height, width) each camera is recorded at: the robot description's, or
    --image-size square."""
    return setup.camera_shapes(image_size=config.image_size)


def stream_specs(setup: SimTaskSetup, config: SimCollectionConfig) -> list[Any]:
    """The recorded streams: the FR3 names and shapes a teleop session records, at the
    rates the simulated robot publishes (its robot description's), and both action labels
    (end-effector `command` and `joint_command`) and the teleop input at the expert's
    10 Hz action rate."""
    from data_collection.schema import fr3_stream_specs
    from sim.env import EnvConfig

    robot = setup.robot
    step_rate_hz = 1.0 / EnvConfig.step_period_s
    return fr3_stream_specs(
        camera_names=robot.camera_names,
        image_shape=camera_shapes(setup, config),
        camera_rate_hz={camera.name: camera.rate_hz for camera in robot.cameras},
        state_rate_hz=robot.state.rate_hz,
        gripper_rate_hz=robot.state.gripper_rate_hz,
        command_rate_hz=step_rate_hz,
        teleop_rate_hz=step_rate_hz,
        joint_command_rate_hz=step_rate_hz,
    )


def _check_store_matches(store: Any, setup: SimTaskSetup, config: SimCollectionConfig) -> None:
    """Refuse to append to a store whose episodes have other cameras, image sizes or
    hold steps at the end (a policy trained on the mix would learn two behaviours).
    A store recorded before collect-sim wrote `joint_command` is still appended to: its
    end-effector episodes are the same, and a joint-space training names the episodes
    that lack the stream."""
    ids = store.episode_ids()
    if not ids:
        return
    recorded = store.metadata(ids[-1])
    if recorded.get("task") != setup.task.title:
        raise ValueError(
            f"{store.path} holds demonstrations of task {recorded.get('task')!r}, this collection records "
            f"{setup.task.title!r} ({setup.source}); use another --store"
        )
    held = recorded.get("sim", {}).get("hold_steps")
    if held != config.extra_steps:
        recorded = "an unrecorded number of" if held is None else str(held)
        raise ValueError(
            f"{store.path} holds demonstrations ending with {recorded} hold steps, this collection would "
            f"record {config.extra_steps}; use --hold-steps {held} or another --store"
            if held is not None
            else f"{store.path} holds demonstrations ending with {recorded} hold steps (recorded by an older "
            f"df-stack), this collection would record {config.extra_steps}; use another --store"
        )
    last = store.episode(ids[-1])
    for camera, (height, width) in camera_shapes(setup, config).items():
        if camera not in last.stream_names:
            raise ValueError(
                f"{store.path} holds episodes without camera {camera!r} (streams {last.stream_names}); "
                "use another --store"
            )
        shape = tuple(last.spec(camera).shape)
        if shape != (height, width, 3):
            hint = f"use --image-size {shape[0]} or " if shape[0] == shape[1] else "use "
            raise ValueError(
                f"{store.path} holds {shape[0]}x{shape[1]} px {camera!r} frames, this collection would "
                f"record {height}x{width}; {hint}another --store"
            )


def _store_settings(setup: SimTaskSetup) -> Any:
    """A new store's settings: the default low-resolution copies plus the task's own policy
    image size, so training the task never decodes full frames."""
    from data_collection.schema import StoreSettings

    size = setup.config.get("image_size")
    if size is None:
        return StoreSettings()
    height, width = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    sizes = StoreSettings().policy_image_sizes
    return StoreSettings(policy_image_sizes=sizes if (height, width) in sizes else (*sizes, (height, width)))


def _directory_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while walking
                total += os.stat(os.path.join(root, name)).st_size
    return total


def _episodes(
    seeds: list[int], setup: SimTaskSetup, config: SimCollectionConfig, processes: int
) -> Iterator[tuple[int, Callable[[Emit], SimEpisodeResult]]]:
    """For each seed, in order: the seed and a function that emits the episode's samples
    into `emit` and returns its result (in-process: simulates while emitting; with
    workers: replays what a worker simulated)."""
    if processes <= 1:
        runner = _RobotRunner(setup, config)
        try:
            for seed in seeds:
                yield seed, lambda emit, seed=seed: runner.run(seed, emit)
        finally:
            runner.close()
        return
    context = mp.get_context("spawn")  # a fresh process per worker: no inherited GL or threads
    with context.Pool(processes, _init_worker, (setup, config)) as pool:
        for result, samples in pool.imap(_worker_episode, seeds):

            def replay(emit: Emit, result: SimEpisodeResult = result, samples: list[Sample] = samples) -> Any:
                for stream, stamp, value in samples:
                    emit(stream, stamp, value)
                return result

            yield result.seed, replay


def _describe(setup: SimTaskSetup, config: SimCollectionConfig) -> dict[str, Any]:
    """The simulated robot and cameras for episode metadata (builds the model, no rendering)."""
    env = setup.make_env(image_size=config.image_size)
    try:
        return env.describe()
    finally:
        env.close()


def collect_sim(
    store_path: str | Path,
    episodes: int,
    seed: int = 0,
    image_size: int | None = None,
    processes: int = 1,
    config: SimCollectionConfig | None = None,
    progress: bool = False,
    on_episode: Callable[[SimEpisodeResult, Any], None] | None = None,
) -> CollectSummary:
    """Record `episodes` scripted-expert episodes (seeds seed, seed+1, ...) of the task
    `config.task` into the store at `store_path` (created if missing, appended to
    otherwise) and return a summary.

    `config` overrides `image_size` (None: the robot description's camera sizes);
    `processes` > 1 simulates in that many worker processes while this process records.
    `on_episode(result, commit)` is called after each commit (the demo's hook for its own
    progress). Raises StoreLockedError if another process records into the store,
    ValueError for bad arguments, a task that cannot be simulated or a store holding other
    cameras or image sizes."""
    from data_collection.recorder import Recorder, RecorderConfig
    from data_collection.store import EpisodeStore
    from evaluation.sim_task import load_sim_task

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    config = config or SimCollectionConfig(image_size=image_size)
    setup = load_sim_task(config.task)  # before the store is touched: a bad task changes nothing
    store = EpisodeStore.open_or_create(store_path, _store_settings(setup))
    _check_store_matches(store, setup, config)
    store.acquire_writer_lock()  # fail now, not after the first episode was simulated
    clock = _SimClock()
    try:
        description = _describe(setup, config)
    except BaseException:
        store.release_writer_lock()
        raise
    rates = {camera.name: camera.rate_hz for camera in setup.robot.cameras}
    recorder = Recorder(
        store,
        stream_specs(setup, config),
        # Samples arrive faster than real time: wait for buffer space (as rosbag import
        # does) instead of dropping what a real-time callback would have to drop.
        RecorderConfig(block_when_full=True),
        robot={key: value for key, value in description.items() if key != "cameras"},
        cameras={name: {**camera, "rate_hz": rates[name]} for name, camera in description["cameras"].items()},
        clock=clock,
    )
    seeds = list(range(seed, seed + episodes))
    started = time.perf_counter()
    committed: list[str] = []
    successes, marked, frames, samples_total, dropped, sim_time = 0, 0, 0, 0, 0, 0.0
    failed_seeds: list[int] = []
    problems: dict[str, list[str]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes, desc="collect-sim", unit="ep", file=sys.stderr)

    def emit(stream: str, stamp: float, value: Any) -> None:
        clock.now = max(clock.now, stamp)
        recorder.add(stream, stamp, value)

    try:
        for episode_seed, produce in _episodes(seeds, setup, config, processes):
            clock.now = 0.0
            recorder.start_episode(
                setup.task.title,
                metadata={
                    "source": "collect-sim (scripted expert, in-process simulation)",
                    "task_config": setup.source,
                    "sim_task": setup.task.describe(),
                    "embodiment": setup.robot.embodiment,
                    "seed": episode_seed,
                    "stamp_timebase": STAMP_TIMEBASE,
                    "teleop_stream": "the base-frame twist that turns each expert target into the next",
                },
                initial_configuration={},
            )
            try:
                result = produce(emit)
            except BaseException:
                recorder.discard_episode()
                raise
            commit = recorder.stop_episode(
                success=result.success,
                notes=f"scripted expert, seed {result.seed}, {result.failed_picks} failed pick(s)",
                metadata={
                    "initial_configuration": result.initial_configuration,
                    "sim": {
                        "seed": result.seed,
                        "steps": result.steps,
                        "sim_time_s": result.sim_time_s,
                        "failed_picks": result.failed_picks,
                        "hold_steps": config.extra_steps,
                        "success_report": result.report,
                    },
                },
            )
            stats = commit.statistics
            if commit.committed:
                committed.append(commit.episode_id)
            else:
                problems.setdefault(f"seed {result.seed}", []).append(commit.message)
            if commit.problems:
                marked += 1
                problems[commit.episode_id] = commit.problems
            successes += int(result.success and commit.committed)
            if not result.success:
                failed_seeds.append(result.seed)
            frames += sum(stats["streams"][c]["written"] for c in setup.robot.camera_names)
            samples_total += int(stats["written"])
            dropped += int(stats["dropped"])
            sim_time += result.sim_time_s
            if on_episode is not None:
                on_episode(result, commit)
            if bar is not None:
                bar.set_postfix(success=f"{successes}/{len(committed)}", marked=marked, refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        recorder.close()
        store.release_writer_lock()
    wall = time.perf_counter() - started
    return CollectSummary(
        store=str(store.path),
        requested=episodes,
        committed=len(committed),
        successes=successes,
        marked=marked,
        episode_ids=committed,
        seeds=seeds,
        failed_seeds=failed_seeds,
        problems=problems,
        wall_s=wall,
        episodes_per_s=len(committed) / wall if wall > 0 else 0.0,
        sim_time_s=sim_time,
        frames=frames,
        samples=samples_total,
        dropped=dropped,
        store_bytes=_directory_bytes(store.path),
        processes=processes,
        task=setup.source,
        cameras={name: list(shape) for name, shape in camera_shapes(setup, config).items()},
    )


# -------------------------------------------------------------------------- CLI


def ensure_demonstrations(
    store_path: str | Path,
    episodes: int,
    processes: int = 2,
    progress: bool = True,
    config: SimCollectionConfig | None = None,
) -> CollectSummary | None:
    """At least `episodes` scripted demonstrations in the store, recorded with `config`
    (default SimCollectionConfig()): records the missing ones (None when none were missing).
    Raises ValueError when the store's demonstrations were recorded differently
    (stages that cache a store must not train on stale demonstrations)."""
    from data_collection.store import EpisodeStore
    from evaluation.sim_task import load_sim_task

    config = config or SimCollectionConfig()
    path = Path(store_path)
    have = 0
    if path.exists():
        store = EpisodeStore.open(path)
        _check_store_matches(store, load_sim_task(config.task), config)
        have = len(store.episode_ids())
    if have >= episodes:
        return None
    return collect_sim(path, episodes - have, seed=have, processes=processes, config=config, progress=progress)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfstack collect-sim",
        description=(
            "Record scripted-expert demonstrations of a simulated task from the in-process simulator "
            "through the episode recorder (same streams as a teleoperated session)."
        ),
        epilog=(
            "Examples:\n  dfstack collect-sim --store outputs/swap_fruit.zarr --episodes 100 --processes 2\n"
            "  dfstack collect-sim --task /path/to/my_task.yaml --store my_task.zarr --episodes 50"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--task",
        default=DEFAULT_TASK,
        help=f"task config: a name in training/conf/task/ or a YAML file with a sim: section (default {DEFAULT_TASK})",
    )
    parser.add_argument("--store", type=Path, required=True, help="episode store (created if missing, else appended)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to record (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; then +1 each (default 0)")
    parser.add_argument(
        "--image-size",
        type=int,
        help="record every camera N x N rgb8 (default: each camera's size in the task's robot description)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help=(
            "1: simulate and record in this process; P > 1: P simulation worker processes while this "
            "process records (default: 2, or 1 on a single core)"
        ),
    )
    parser.add_argument("--max-steps", type=int, default=300, help="cut an episode after this many 0.1 s actions")
    parser.add_argument(
        "--hold-steps",
        type=int,
        default=SimCollectionConfig.extra_steps,
        help=f"0.1 s actions holding the rest pose after the task is done (default {SimCollectionConfig.extra_steps})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (last line)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 every episode committed unmarked, 1 some episode marked or not
    committed, 2 an error (message on stderr)."""
    from data_collection.schema import StoreError

    args = build_parser().parse_args(argv)
    try:
        config = SimCollectionConfig(
            task=args.task, image_size=args.image_size, max_steps=args.max_steps, extra_steps=args.hold_steps
        )
        summary = collect_sim(
            args.store,
            args.episodes,
            seed=args.seed,
            processes=args.processes,
            config=config,
            progress=not args.no_progress,
        )
    except (StoreError, ValueError, OSError) as error:
        print(f"dfstack collect-sim: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dfstack collect-sim: interrupted; committed episodes are kept", file=sys.stderr)
        return 130
    print(summary.describe())
    if args.json:
        import json

        print(json.dumps(summary.to_dict()))
    return 0 if summary.committed == summary.requested and summary.marked == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
