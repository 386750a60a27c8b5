"""The simulated task a task config names, and the simulator built from it.

A task config (training/conf/task/<name>.yaml or any YAML file) says which robot
description it runs on and, for a simulated task, its `sim:` section: a hydra `_target_`
naming a sim.tasks.base.SimTask class and its arguments. This module is where that
section becomes a task object (the simulator below never picks a task by name), and
where the robot description becomes the simulator's settings: each camera at its
native size and rate, the state rates, the embodiment `step()` takes.

    setup = load_sim_task("swap_fruit_sim")                 # a task config's name
    setup = load_sim_task("/path/to/my_task.yaml")          # or its file
    setup = sim_task_from_config(loaded.training_config["task"])   # a checkpoint's task
    env = setup.make_env(cameras=spec.camera_names, clip_targets=True)

Importing this module loads neither MuJoCo nor torch; loading a task does (hydra's
composition imports the training configuration, the task the simulator).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robots.description import RobotDescription
    from sim.env import EnvConfig, SimEnv
    from sim.hil import HilConfig
    from sim.tasks.base import SimTask

# The task `collect-sim`, `bench-paper`, the demo and sim_robot_node run unless told otherwise.
DEFAULT_TASK = "swap_fruit_sim"


class SimTaskError(ValueError):
    """A task cannot be simulated as configured; the message names the task and the key."""


@dataclass(frozen=True)
class SimTaskSetup:
    """A simulated task with its robot: what every simulator front end builds from."""

    config: dict[str, Any]  # the task config, resolved (as a checkpoint stores it)
    robot: RobotDescription
    task: SimTask
    source: str = ""  # where the task config came from (a name, a path or a checkpoint)

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.task.name))

    def robot_path(self) -> str:
        """The robot description's file, absolute (so a node started elsewhere finds it)."""
        return str(Path(self.robot.source).resolve()) if self.robot.source else self.robot.name

    def write_config(self, path: str | os.PathLike[str]) -> str:
        """Write the task config (its robot as an absolute path) to `path`, for a process
        that takes a task config file (sim_robot_node's `task`); returns the path."""
        import yaml

        Path(path).write_text(yaml.safe_dump({**self.config, "robot": self.robot_path()}, sort_keys=False))
        return str(path)

    def with_robot(self, robot: RobotDescription) -> SimTaskSetup:
        """The same task on another robot description (e.g. smaller camera frames), checked
        like the task's own: every camera needs a mount in the task's scene."""
        _check_cameras(robot, self.task, f"task {self.name!r}")
        return replace(self, robot=robot)

    def camera_shapes(self, cameras: Sequence[str] | None = None, image_size: int | None = None) -> dict[str, Any]:
        """(height, width) of each of `cameras` (default: every camera of the robot): the
        description's native size, or `image_size` x `image_size` for every camera."""
        names = tuple(cameras) if cameras is not None else self.robot.camera_names
        shapes = {}
        for name in names:
            described = self.robot.camera(name)
            shapes[name] = (image_size, image_size) if image_size else (described.height, described.width)
        return shapes

    def env_config(
        self, cameras: Sequence[str] | None = None, image_size: int | None = None, **changes: Any
    ) -> EnvConfig:
        """The simulator's settings for this robot: `cameras` (default: all of the robot's)
        at their native sizes (or `image_size` square), stepping on the robot's embodiment;
        `changes` sets other EnvConfig fields (clip_targets, fault_plan, ...)."""
        from sim.env import EnvConfig, Workspace

        shapes = self.camera_shapes(cameras, image_size)
        changes.setdefault("workspace", Workspace.of(self.robot.safety))
        return EnvConfig(
            cameras=tuple(shapes),
            camera_sizes=shapes,
            embodiment=self.robot.embodiment,
            **changes,
        )

    def hil_config(self, cameras: Sequence[str] | None = None, target_interpolation_s: float = 0.1) -> HilConfig:
        """The simulated robot's publishing rates: each camera's and the state topics'."""
        from sim.hil import HilConfig

        names = tuple(cameras) if cameras is not None else self.robot.camera_names
        rates = {name: self.robot.camera(name).rate_hz for name in names}
        return HilConfig(
            camera_rates_hz=rates,
            state_rate_hz=self.robot.state.rate_hz,
            gripper_rate_hz=self.robot.state.gripper_rate_hz,
            target_interpolation_s=target_interpolation_s,
        )

    def make_env(self, cameras: Sequence[str] | None = None, image_size: int | None = None, **changes: Any) -> SimEnv:
        from sim.env import SimEnv

        return SimEnv(self.env_config(cameras, image_size, **changes), self.task)

    def policy_problems(self, spec: Any) -> list[str]:
        """Every reason a policy with `spec` cannot run on this simulated robot: what the
        robot description refuses, and an action period other than the simulator's step."""
        from sim.env import EnvConfig

        problems = self.robot.policy_mismatches(spec)
        step = EnvConfig.step_period_s
        if abs(spec.action_period_s - step) > 1e-9:
            problems.append(f"action period {spec.action_period_s} s, the simulator steps {step} s")
        return problems


def sim_task_from_config(task_config: Mapping[str, Any], source: str = "") -> SimTaskSetup:
    """The simulated task of a resolved task config (a mapping with `robot` and `sim`).
    Raises SimTaskError naming what is wrong: no `sim:` section, a `_target_` that is not a
    SimTask, bad arguments, or robot cameras the task's scene has no mount for."""
    from robots.description import RobotDescriptionError, load_robot_description

    config = dict(task_config)
    name = str(config.get("name", "?"))
    where = f"task {name!r}" + (f" ({source})" if source and source != name else "")
    section = config.get("sim")
    if section is None:
        raise SimTaskError(
            f"{where} has no `sim:` section, so it cannot be simulated (a real-robot task); a simulated "
            "task names its class there, e.g. sim: {_target_: sim.tasks.swap_fruit.SwapFruitTask} "
            "(docs/new_task.md)"
        )
    if not isinstance(section, Mapping) or "_target_" not in section:
        raise SimTaskError(f"{where}: `sim` must be a mapping with a `_target_` (a SimTask class), got {section!r}")
    try:
        robot = load_robot_description(str(config["robot"]))
    except (KeyError, RobotDescriptionError) as error:
        raise SimTaskError(f"{where}: robot: {error}") from error
    task = _instantiate(section, where)
    _check_cameras(robot, task, where)
    return SimTaskSetup(config, robot, task, source or name)


def _check_cameras(robot: RobotDescription, task: SimTask, where: str) -> None:
    missing = [c for c in robot.camera_names if c not in task.camera_names]
    if missing:
        raise SimTaskError(
            f"{where}: robot description {robot.source or robot.name} has cameras {missing} that the task's scene "
            f"cannot render (it has {list(task.camera_names)}); mount them in the task config: "
            "sim.cameras: {name: {position: [x, y, z], look_at: [x, y, z], fovy: 60}}"
        )
    if robot.robot_type != "fr3":
        raise SimTaskError(
            f"{where}: the simulator is an FR3; robot description {robot.name!r} has robot_type {robot.robot_type!r}"
        )


def _instantiate(section: Mapping[str, Any], where: str) -> SimTask:
    from hydra.errors import HydraException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sim.tasks.base import SimTask

    target = section["_target_"]
    try:
        task = instantiate(OmegaConf.create(dict(section)), _convert_="all")
    except HydraException as error:
        # Hydra wraps the class's own error (a ValueError naming the argument) in its message.
        cause = error.__cause__ or error
        raise SimTaskError(f"{where}: sim: cannot make {target}: {cause}") from error
    except (TypeError, ValueError) as error:
        raise SimTaskError(f"{where}: sim: {target}: {error}") from error
    if not isinstance(task, SimTask):
        raise SimTaskError(
            f"{where}: sim._target_ {target} is not a sim.tasks.base.SimTask (got {type(task).__name__})"
        )
    return task


def load_sim_task(name_or_path: str | os.PathLike[str] = DEFAULT_TASK) -> SimTaskSetup:
    """The simulated task of a task config: a name in training/conf/task/ or a YAML file
    (composed and checked as `dfstack train task=...` does, so the same file trains)."""
    from training.config import TrainingConfigError, compose_config, to_container

    text = str(name_or_path)
    try:
        config = compose_config([f"task={text}"])
    except TrainingConfigError as error:
        raise SimTaskError(f"task {text}: {error}") from error
    return sim_task_from_config(to_container(config.task), text)


def checkpoint_training_config(checkpoint: str | Path) -> dict[str, Any] | None:
    """The training configuration a checkpoint directory stores (config.yaml's `training`),
    read without loading the model; None when it cannot be read (loading the checkpoint
    then says why)."""
    import yaml

    try:
        resolved = yaml.safe_load((Path(checkpoint) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    training = resolved.get("training") if isinstance(resolved, dict) else None
    return training if isinstance(training, dict) else {}


def checkpoint_sim_task(training_config: Mapping[str, Any] | None, checkpoint: str | Path) -> SimTaskSetup:
    """The simulated task a checkpoint was trained on, from the training configuration it
    stores (checkpoint_training_config). A checkpoint from before task configs had a
    `sim:` section gets the built-in task config of its task's name; one saved without a
    training configuration (outside the trainer) the default task."""
    task = training_config.get("task") if isinstance(training_config, Mapping) else None
    if not isinstance(task, Mapping):
        return load_sim_task(DEFAULT_TASK)
    if "sim" not in task:
        from training.config import CONFIG_DIR

        name = str(task.get("name", ""))
        if not (CONFIG_DIR / "task" / f"{name}.yaml").is_file():
            raise SimTaskError(
                f"checkpoint {checkpoint}: its task {name!r} predates simulated-task configs and is not a built-in "
                "task; give the task (--task NAME|PATH)"
            )
        return load_sim_task(name)
    return sim_task_from_config(task, f"checkpoint {checkpoint}")
