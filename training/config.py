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
from policy.spec import ActionComponent, ActionSpec, CameraSpec, PolicySpec

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
    task = config.task
    try:
        cameras = tuple(
            CameraSpec(str(name), int(task.image_size), int(task.image_size), int(task.channels))
            for name in task.cameras
        )
        action = ActionSpec(tuple(ActionComponent(str(c.name), int(c.size)) for c in task.action))
        return PolicySpec(
            cameras=cameras,
            proprio_dim=int(task.proprio_dim),
            action=action,
            actions_per_token=int(task.actions_per_token),
            token_period_s=float(task.token_period_s),
            proprio_names=("x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper_width")
            if int(task.proprio_dim) == 10
            else (),
        )
    except (ValueError, TypeError) as error:
        raise TrainingConfigError(f"task configuration: {error}") from error


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
