"""The Hydra config tree (training/conf) and what the trainer builds from it.

`compose_config(overrides)` uses Hydra's compose API, so `dfstack train`, `python -m
training.train` and the tests all go through the same path without Hydra taking
over the working directory or the logging. Every configuration error is caught there,
before a dataset is opened or a file written, as a TrainingConfigError whose message
names the key, the value and what is expected:

- a group given an unknown name (`experiment=swapfruit`) names the group's choices;
- a group given a path to a YAML file (`task=/path/to/my_task.yaml`) loads that file
  as the group's option, checked like a built-in one;
- types, unknown keys, ranges and unset keys are checked against training/schema.py,
  then each section builds the policy's own dataclass (PolicySpec, ModelConfig,
  ObjectiveConfig, ...), which validate every field;
- `resume=<run_dir>` restores the run's own configuration (`<run_dir>/config.yaml`);
  the command may only add what cannot change the trained weights.

The helpers turn the config's sections into the policy's own dataclasses.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from policy.model import ModelConfig
from policy.objective import ObjectiveConfig
from policy.spec import PolicySpec

CONFIG_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_NAME = "config"
# The option name under which a YAML file given as `group=PATH` is composed. No built-in
# option has it, so the file may extend the built-in option it was copied from.
GIVEN_FILE_OPTION = "_given_file_"
YAML_SUFFIXES = (".yaml", ".yml")


class TrainingConfigError(ValueError):
    """The configuration cannot be trained as given; the message says what to change."""


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The resolved, checked configuration for Hydra-style `overrides` (e.g. ["model=tiny",
    "optim.total_steps=100"]). Raises TrainingConfigError naming every problem."""
    from .schema import register_schema

    register_schema()
    overrides = [str(override) for override in overrides or []]
    parsed = _parse_overrides(overrides)
    with tempfile.TemporaryDirectory(prefix="dfstack-conf-") as copies, _config_loader() as loader:
        hydra_overrides, file_of_group = _checked_group_overrides(parsed, loader, Path(copies))
        unresolved = _compose(hydra_overrides, file_of_group)
        config = _resolved(unresolved)
        if config.resume is not None:
            given = _given_keys(parsed, unresolved, _compose([], {}), _chosen_groups(loader, hydra_overrides))
            config = _restore_run(config, given)
    check_config(config)
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


def group_choices() -> dict[str, list[str]]:
    """The config groups (task, model, ...) and their options, as Hydra finds them."""
    with _config_loader() as loader:
        return {group: loader.get_group_options(group) for group in _groups(loader)}


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


def feature_mapping(config: DictConfig, spec: PolicySpec | None = None) -> Any:
    """data_collection.mapping.FeatureMapping of the task: its embodiment, reading the
    streams `task.streams` names (each null role: the embodiment's own stream)."""
    from data_collection.mapping import FeatureMapping
    from robots.embodiment import StreamNames

    spec = spec or policy_spec(config)
    mapping = FeatureMapping.for_spec(spec)
    given = {role: value for role, value in to_container(config.task.get("streams") or {}).items() if value}
    if not given:
        return mapping
    default = mapping.embodiment.streams
    return FeatureMapping(mapping.embodiment, StreamNames(**{**vars(default), **given}))


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


# -- checking -------------------------------------------------------------------------------


def augmentation_config(config: DictConfig) -> Any:
    """training.data.AugmentationConfig of the task."""
    from .data import AugmentationConfig

    return AugmentationConfig(**to_container(config.task.augmentation))


def runner_config(config: DictConfig) -> Any:
    """policy.runner.RunnerConfig of the closed-loop evaluation."""
    from policy.runner import RunnerConfig

    return RunnerConfig(**to_container(config.evaluation.runner))


# Sections built into the policy's own dataclasses, whose checks then run on the composed
# values (each names the field it refuses).
_DATACLASS_CHECKS: tuple[tuple[str, Callable[[DictConfig], object]], ...] = (
    ("task", policy_spec),
    ("task.streams", feature_mapping),
    ("task.augmentation", augmentation_config),
    ("model", model_config),
    ("objective", objective_config),
    ("evaluation.runner", runner_config),
)


def check_config(config: DictConfig) -> None:
    """Raise TrainingConfigError listing every key of `config` that cannot be trained."""
    from .schema import config_problems

    problems = config_problems(config)
    if not problems:
        for section, build in _DATACLASS_CHECKS:
            try:
                build(config)
            except (ValueError, TypeError) as error:
                problems.append(_section_problem(config, section, error))
    if len(problems) == 1:
        raise TrainingConfigError(problems[0])
    if problems:
        raise TrainingConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _section_problem(config: DictConfig, section: str, error: Exception) -> str:
    """A dataclass's message under its section's name: 'task.actions_per_token must be >= 1,
    got 0' when the message starts with one of the section's keys."""
    message = str(error.__cause__ or error)
    first_word = message.split(" ", 1)[0]
    if first_word in OmegaConf.select(config, section):
        return f"{section}.{message}"
    return f"{section}: {message}"


# -- composing ------------------------------------------------------------------------------


@contextlib.contextmanager
def _config_loader() -> Iterator[Any]:
    """Hydra initialised on training/conf; yields its config loader."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        yield GlobalHydra.instance().config_loader()


def _groups(loader: Any) -> list[str]:
    return sorted(group for group in loader.list_groups("") if group != "hydra")


def _parse_overrides(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as error:
        raise TrainingConfigError(f"cannot parse override: {error}") from None


def _checked_group_overrides(parsed: list[Any], loader: Any, copies: Path) -> tuple[list[str], dict[str, str]]:
    """The overrides for Hydra: a group given an unknown name is refused with its choices;
    one given a YAML file's path gets that file, copied into `copies/<group>/` (a config
    root on Hydra's search path). Also returns group -> the path given, for messages."""
    groups = _groups(loader)
    overrides, search_path = [], [f"file://{copies}"]
    file_of_group: dict[str, str] = {}
    # Hydra's own hydra.searchpath stays usable; options found there only Hydra can list.
    own_search_path = [o.value() for o in parsed if o.key_or_group == "hydra.searchpath"]
    for override in parsed:
        group, value = override.key_or_group, override.value()
        if group == "hydra.searchpath":
            search_path += list(value)
            continue
        if group not in groups or override.is_delete() or value is None:
            overrides.append(override.input_line)
            continue
        if not isinstance(value, str):
            raise TrainingConfigError(f"{override.input_line}: {group} takes one name or a path to a YAML file")
        if value.endswith(YAML_SUFFIXES):
            path = Path(value).expanduser()
            if not path.is_file():
                raise TrainingConfigError(f"{group}={value}: no such file ({path.resolve()})")
            (copies / group).mkdir(exist_ok=True)
            shutil.copyfile(path, copies / group / f"{GIVEN_FILE_OPTION}.yaml")
            file_of_group[group] = str(path)
            overrides.append(f"{override.input_line.split('=', 1)[0]}={GIVEN_FILE_OPTION}")
            continue
        choices = loader.get_group_options(group)
        if value not in choices and not own_search_path:
            close = difflib.get_close_matches(value, choices, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise TrainingConfigError(
                f"{group}={value}: no {group} named {value!r}{hint}; choices: {', '.join(choices)}, "
                f"or a path to a YAML file ({group}=/path/to/my_{group}.yaml)"
            )
        overrides.append(override.input_line)
    return [*overrides, f"hydra.searchpath=[{','.join(search_path)}]"], file_of_group


def _compose(hydra_overrides: list[str], file_of_group: dict[str, str]) -> DictConfig:
    """The configuration, interpolations not yet resolved; Hydra's and OmegaConf's errors
    come out as TrainingConfigError naming the key."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return compose(CONFIG_NAME, overrides=hydra_overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise TrainingConfigError(_composition_error(error, file_of_group)) from None


def _resolved(config: DictConfig) -> DictConfig:
    from omegaconf.errors import OmegaConfBaseException

    resolved = config.copy()
    try:
        OmegaConf.resolve(resolved)
    except OmegaConfBaseException as error:
        raise TrainingConfigError(_composition_error(error, {})) from None
    return resolved


def _composition_error(error: Exception, file_of_group: dict[str, str]) -> str:
    """One line naming the key, the value and what is expected, and the file it came from
    when it came from one; Hydra's own message otherwise (it names the missing option)."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

    from .schema import expected_type, unknown_key_message

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    key = getattr(cause, "full_key", None)
    source = re.search(r"In '([^']+)'", str(error))
    where = ""
    if source:
        group, _, option = source.group(1).rpartition("/")
        where = (
            f" (in {file_of_group[group]})"
            if option == GIVEN_FILE_OPTION
            else f" (in {CONFIG_DIR / source.group(1)}.yaml)"
        )
    merging = re.match(r"(?:Error merging override |Could not override ')([^=']+)", str(error))
    named = merging.group(1).lstrip("+") if merging else ""
    if key and merging and not (key.startswith(named) or named.startswith(key)):
        # A key inside a value given whole (task.action=[{...}]) comes without its path.
        return f"{merging.group(1)}: {str(cause).splitlines()[0]}"
    if key and isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and "not in" in str(cause):
        return unknown_key_message(key, where)
    if key and isinstance(cause, ValidationError):
        given = re.match(rf"Error merging override \+*{re.escape(key)}=(.*)", str(error))
        value = given.group(1) if given else repr(getattr(cause, "value", None))
        return f"{key}={value} is not {expected_type(key)}{where}"
    # Hydra's search path listing is noise here; a given file appears under its option name.
    text = str(error).split("\nConfig search path:")[0].strip()
    for group, path in file_of_group.items():
        text = text.replace(f"{group}/{GIVEN_FILE_OPTION}", path)
    return f"invalid configuration: {text}"


# -- resuming -------------------------------------------------------------------------------


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every non-mapping value (lists are values)."""
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    leaves: dict[str, Any] = {}
    for key, value in node.items():
        leaves.update(_leaves(value, f"{prefix}{key}."))
    return leaves


def _chosen_groups(loader: Any, hydra_overrides: list[str]) -> list[str]:
    """The groups whose option the command chose, itself or through an experiment (whose
    `override /model: df` counts even where df is the default)."""
    from hydra.types import RunMode

    defaults = loader.compute_defaults_list(CONFIG_NAME, hydra_overrides, RunMode.RUN)
    return [group for group in defaults.overrides.override_choices if group != "experiment"]


def _given_keys(parsed: list[Any], unresolved: DictConfig, defaults: DictConfig, groups: list[str]) -> set[str]:
    """The keys the command sets: those it changes from the defaults (an experiment's own
    settings), and every key under a key it names or a group whose option it chose."""
    mine = _leaves(OmegaConf.to_container(unresolved, resolve=False))
    default = _leaves(OmegaConf.to_container(defaults, resolve=False))
    given = {key for key, value in mine.items() if default.get(key, object()) != value}
    for named in [override.key_or_group for override in parsed] + groups:
        given |= {key for key in mine if key == named or key.startswith(f"{named}.")}
    return given


def _restore_run(requested: DictConfig, given: set[str]) -> DictConfig:
    """The configuration a run started with (its config.yaml) with what this command may
    change: keys that cannot alter the trained weights (schema.on_resume). A command that
    sets any other key to another value than the run's is refused, naming each."""
    from omegaconf.errors import OmegaConfBaseException

    from .schema import FROM_COMMAND, MUST_MATCH, on_resume, resume_changeable_keys
    from .state import find_resume_dir

    run = find_resume_dir(str(requested.resume)).resolve().parent
    saved_file = run / "config.yaml"
    try:
        saved = _leaves(OmegaConf.to_container(OmegaConf.load(saved_file), resolve=True))
    except (OSError, OmegaConfBaseException) as error:
        raise TrainingConfigError(
            f"cannot resume {run}: its configuration {saved_file} is unreadable: {error}"
        ) from None
    mine = _leaves(to_container(requested))
    kept = OmegaConf.create()  # what the command takes from the run
    conflicts, unknown = [], []
    for key, run_value in saved.items():
        policy = on_resume(key)
        if policy == FROM_COMMAND:
            continue
        if key not in mine:
            unknown.append(key)
        elif key in given and mine[key] != run_value:
            if policy == MUST_MATCH:
                conflicts.append(f"{key}: run has {run_value!r}, command has {mine[key]!r}")
        else:
            OmegaConf.update(kept, key, run_value, force_add=True)
    if unknown:
        raise TrainingConfigError(
            f"cannot resume {run}: {saved_file} holds settings this version does not take: {', '.join(unknown)}"
        )
    if conflicts:
        raise TrainingConfigError(
            f"cannot resume {run}: the command changes what the run was trained with:\n  - "
            + "\n  - ".join(conflicts)
            + f"\nA resumed run keeps its configuration; a command may set only {resume_changeable_keys()}."
        )
    try:
        restored = OmegaConf.merge(requested, kept)
    except OmegaConfBaseException as error:
        raise TrainingConfigError(f"cannot resume {run}: {saved_file}: {_composition_error(error, {})}") from None
    assert isinstance(restored, DictConfig)
    if "run_dir" not in given:
        restored.run_dir = str(run)  # the resumed directory, wherever the run was started from
    return restored
