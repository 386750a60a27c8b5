"""The Hydra config tree (training/conf) and what the trainer builds from it.

`compose_config(overrides)` uses Hydra's compose API, so `dfstack train`, `python -m
training.train` and the tests all go through the same path without Hydra taking
over the working directory or the logging. The helpers turn the config's sections
into the policy's own dataclasses (PolicySpec, ModelConfig, ObjectiveConfig), which
validate every field and name what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from policy.model import ModelConfig
from policy.objective import ObjectiveConfig
from policy.spec import PolicySpec

CONFIG_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_NAME = "config"


class TrainingConfigError(ValueError):
    """The configuration cannot be trained as given; the message says what to change."""


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The resolved configuration for Hydra-style `overrides` (e.g. ["model=tiny",
    "optim.total_steps=100"]). Raises TrainingConfigError for an unknown key or group."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            config = compose(CONFIG_NAME, overrides=list(overrides or []))
        OmegaConf.resolve(config)
    except (HydraException, OmegaConfBaseException) as error:
        raise TrainingConfigError(f"invalid configuration override: {error}") from error
    return config


def build_evaluator(config: DictConfig) -> Callable[..., Any] | None:
    """The closed-loop evaluation the trainer runs, or None when evaluation.sim_episodes is
    0. `evaluation.simulator` names its factory as a hydra `_target_` with the factory's
    arguments; the factory is imported here, by name, at run time, so training never
    imports evaluation code (evaluation sits above training)."""
    if int(config.evaluation.sim_episodes) <= 0:
        return None
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    try:
        return instantiate(config.evaluation.simulator, _convert_="all")
    except HydraException as error:
        raise TrainingConfigError(f"evaluation.simulator cannot be built: {error}") from error


def to_container(config: DictConfig) -> dict[str, Any]:
    """Plain dict of the resolved config (what a checkpoint stores)."""
    container = OmegaConf.to_container(config, resolve=True)
    assert isinstance(container, dict)
    return container  # type: ignore[return-value]


def policy_spec(config: DictConfig) -> PolicySpec:
    """The task's policy spec: its cameras, image size, crops and rates on its robot
    description's embodiment (robots.description.RobotDescription.policy_spec)."""
    from robots.description import RobotDescriptionError, load_robot_description

    task = config.task
    try:
        robot = load_robot_description(str(task.robot))
        image_size = task.image_size
        return robot.policy_spec(
            cameras=[str(name) for name in task.cameras],
            image_size=int(image_size) if isinstance(image_size, int) else [int(v) for v in image_size],
            actions_per_token=int(task.actions_per_token),
            token_period_s=float(task.token_period_s),
            crops={str(k): [int(v) for v in crop] for k, crop in (task.get("crops") or {}).items()},
            channels=int(task.channels),
        )
    except (RobotDescriptionError, KeyError, ValueError, TypeError) as error:
        raise TrainingConfigError(f"task configuration: {error}") from error


def task_policy_spec(overrides: list[str] | None = None) -> PolicySpec:
    """The policy spec of a task config, e.g. `task_policy_spec(["task.image_size=16"])`:
    what tests and benchmarks build their specs from (never a copy of the task's values)."""
    return policy_spec(compose_config(overrides))


def deployed_policy(overrides: list[str] | None = None) -> tuple[PolicySpec, ModelConfig]:
    """The spec and model configuration an experiment trains (default: the swap-fruit
    preset), so benchmarks time the policy that is shipped, not a second copy of it."""
    config = compose_config(overrides)
    return policy_spec(config), model_config(config)


def model_config(config: DictConfig) -> ModelConfig:
    values = {k: v for k, v in to_container(config.model).items() if k != "variant"}
    try:
        return ModelConfig.from_dict(values)
    except (ValueError, TypeError) as error:
        raise TrainingConfigError(f"model configuration: {error}") from error


def objective_config(config: DictConfig) -> ObjectiveConfig:
    try:
        return ObjectiveConfig.from_dict(to_container(config.objective))
    except (ValueError, TypeError) as error:
        raise TrainingConfigError(f"objective configuration: {error}") from error
