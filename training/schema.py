"""The schema of the training configuration: every key, its type, its allowed range and
what a resumed run may change. It is the one place a new configuration key is declared.

The dataclasses below are registered in Hydra's ConfigStore as `training_schema`, the
first entry of training/conf/config.yaml's defaults list, so OmegaConf itself converts
and type-checks every value while the configuration is composed (`optim.lr=abc` fails
there) and refuses keys the schema does not declare (`optim.learning_rate=1e-3`).
`config_problems` then checks what types cannot say: ranges, choices, unset keys and keys
added with Hydra's `+`.

Sections that feed a dataclass of the policy (ModelConfig, ObjectiveConfig, RunnerConfig,
AugmentationConfig) take their schema from that dataclass (`schema_of`): same keys, types
and defaults, so a default lives only there; the dataclass's own checks run on the
composed values (training/config.py). The training-owned sections hold no defaults: their
values live in the YAML files of training/conf, the schema only says what a value may be.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from policy.model import ModelConfig
from policy.objective import ObjectiveConfig
from policy.runner import RunnerConfig

from .data import AugmentationConfig

SCHEMA_NAME = "training_schema"

# What a resumed run (resume=<run_dir>) does with a key; see `on_resume`.
MUST_MATCH = "must match"  # restored from the run; a command that sets another value is refused
MAY_CHANGE = "may change"  # restored from the run unless the command sets it (cannot change the trained weights)
FROM_COMMAND = "from the command"  # never restored: it is about this invocation, not the run


@dataclass(frozen=True)
class Check:
    """A condition on a value beyond its type; `expected` completes 'must be ...'."""

    expected: str
    test: Callable[[Any], bool]


POSITIVE = Check("> 0", lambda value: value > 0)
NON_NEGATIVE = Check(">= 0", lambda value: value >= 0)
AT_LEAST_ONE = Check(">= 1", lambda value: value >= 1)
PROBABILITY = Check("in [0, 1]", lambda value: 0 <= value <= 1)
FRACTION_BELOW_ONE = Check("in [0, 1)", lambda value: 0 <= value < 1)
NOT_EMPTY = Check("a non-empty list", lambda value: len(value) > 0)
ADAM_BETAS = Check("two numbers in [0, 1)", lambda value: len(value) == 2 and all(0 <= b < 1 for b in value))
IMAGE_SIZE = Check(
    "a number of pixels >= 8 or [height, width]",
    lambda value: (
        (isinstance(value, int) and value >= 8)
        or (
            isinstance(value, list | ListConfig)
            and len(value) == 2
            and all(isinstance(v, int) and v >= 8 for v in value)
        )
    ),
)
CROPS = Check(
    "camera: [top, left, height, width] with each a whole number of pixels",
    lambda value: all(len(crop) == 4 and all(isinstance(v, int) and v >= 0 for v in crop) for crop in value.values()),
)
DEVICE = Check("auto, cpu, cuda or cuda:N", lambda value: re.fullmatch(r"auto|cpu|cuda(:\d+)?", value) is not None)


def one_of(*choices: str) -> Check:
    return Check("one of " + ", ".join(repr(c) for c in choices), lambda value: value in choices)


def setting(check: Check | None = None, on_resume: str = MUST_MATCH, default: Any = MISSING) -> Any:
    """A schema field: its value comes from the YAML files unless `default` is given."""
    return field(default=default, metadata={"check": check, "on_resume": on_resume})


def schema_of(source: type, name: str, **extra: tuple[Any, Any]) -> type:
    """An OmegaConf schema with `source`'s fields, types and defaults (`source` keeps being
    the one place for them). OmegaConf has no Literal: such a field becomes a str checked
    against the literal's values. `extra` adds keys the YAML carries beside `source`'s,
    as name=(type, setting(...))."""
    hints = typing.get_type_hints(source)
    specs: list[tuple[str, Any, Any]] = [(key, kind, spec) for key, (kind, spec) in extra.items()]
    for source_field in dataclasses.fields(source):
        kind = hints[source_field.name]
        check = None
        if typing.get_origin(kind) is Literal:
            check = one_of(*typing.get_args(kind))
            kind = str
        default = source_field.default
        if default is dataclasses.MISSING and source_field.default_factory is not dataclasses.MISSING:
            default = source_field.default_factory()
        if default is dataclasses.MISSING:
            default = MISSING
        specs.append((source_field.name, kind, setting(check, default=default)))
    return dataclasses.make_dataclass(name, specs)


ModelSchema = schema_of(ModelConfig, "ModelSchema", variant=(str, setting()))
ObjectiveSchema = schema_of(ObjectiveConfig, "ObjectiveSchema")
RunnerSchema = schema_of(RunnerConfig, "RunnerSchema")
AugmentationSchema = schema_of(AugmentationConfig, "AugmentationSchema")


@dataclass
class StreamsSchema:
    """Which recorded streams feed proprioception and actions (robots.embodiment.StreamNames);
    null (or the section left out) takes the embodiment's own (what the recorder and
    `dfstack collect-sim` write). A store imported from a rosbag names its streams in the
    mapping file's `streams:`."""

    state: str | None = setting(default=None)
    command: str | None = setting(default=None)
    gripper: str | None = setting(default=None)
    command_gripper: str | None = setting(default=None)


@dataclass
class TaskSchema:
    """Every key a task YAML (training/conf/task/*.yaml, or a file given as task=PATH) may
    hold: the one place task keys are declared.

    Adding a task key: declare it here (its type, and a Check when it has a range) in the
    same change that adds it to the task YAMLs; a key that leaves them leaves here too.
    tests/training/test_config_errors.py::test_every_builtin_option_fits_the_schema fails
    until both agree. The camera and image checks live in policy.spec and the robot
    description (run on the composed values by training.config); proprioception and
    actions are the robot description's embodiment, not task keys."""

    name: str = setting()
    robot: str = setting()  # a robot description: a name in robots/descriptions/ or a YAML path
    dataset: str = setting(on_resume=MAY_CHANGE)  # the resume state's dataset fingerprint guards the data
    cameras: list[str] = setting(NOT_EMPTY)  # noqa: RUF009 (setting() is a dataclasses.field)
    image_size: Any = setting(IMAGE_SIZE)  # noqa: RUF009 (one number: square, or [height, width])
    crops: dict[str, list[int]] = setting(CROPS)  # noqa: RUF009 (setting() is a dataclasses.field)
    channels: int = setting(one_of(1, 3))
    actions_per_token: int = setting()
    token_period_s: float = setting()
    tolerance_s: float | None = setting(POSITIVE)
    max_tokens: int | None = setting(AT_LEAST_ONE)
    hold_tokens_after_end: int = setting(NON_NEGATIVE)
    val_fraction: float = setting(FRACTION_BELOW_ONE)
    max_episodes: int | None = setting(AT_LEAST_ONE)
    normalizer_margin: float = setting(NON_NEGATIVE)
    streams: StreamsSchema = field(default_factory=StreamsSchema)
    augmentation: AugmentationSchema = field(default_factory=AugmentationSchema)  # type: ignore[valid-type]
    # The simulated task, for tasks that have one (a real-robot task has none): a hydra
    # `_target_` naming a sim.tasks.base.SimTask class and its arguments. Instantiated by
    # evaluation.sim_task (training never imports the simulator); its keys are the class's.
    sim: dict[str, Any] | None = setting(default=None)  # noqa: RUF009 (setting() is a dataclasses.field)


@dataclass
class OptimSchema:
    lr: float = setting(POSITIVE)
    weight_decay: float = setting(NON_NEGATIVE)
    betas: list[float] = setting(ADAM_BETAS)  # noqa: RUF009 (setting() is a dataclasses.field)
    warmup_steps: int = setting(NON_NEGATIVE)
    total_steps: int = setting(AT_LEAST_ONE)
    min_lr_ratio: float = setting(PROBABILITY)
    grad_clip_norm: float = setting(NON_NEGATIVE)
    batch_size: int = setting(AT_LEAST_ONE)
    ema_decay: float = setting(FRACTION_BELOW_ONE)
    amp: str = setting(one_of("auto", "bf16", "fp16", "off"))
    num_threads: int = setting(NON_NEGATIVE)


@dataclass
class LoggingSchema:
    progress: bool = setting()
    log_every: int = setting(AT_LEAST_ONE)
    tensorboard: bool = setting()
    checkpoint_every: int = setting(NON_NEGATIVE)


@dataclass
class EvaluationSchema:
    """Evaluation runs on a copy of the EMA weights with its own random generators, so a
    resumed run may change any of it (see `on_resume`)."""

    every_steps: int = setting(NON_NEGATIVE)
    val_batches: int = setting(AT_LEAST_ONE)
    sim_episodes: int = setting(NON_NEGATIVE)
    sim_seed: int = setting(NON_NEGATIVE)
    sim_fault_plan: str = setting()
    sim_max_steps: int = setting(AT_LEAST_ONE)
    sim_video: bool = setting()
    runner: RunnerSchema = field(default_factory=RunnerSchema)  # type: ignore[valid-type]
    # The factory of the closed-loop evaluation (a hydra `_target_` and its arguments).
    simulator: dict[str, Any] = setting()  # noqa: RUF009 (setting() is a dataclasses.field)


@dataclass
class TrainingSchema:
    """The root of the configuration (training/conf/config.yaml)."""

    task: TaskSchema = field(default_factory=TaskSchema)
    model: ModelSchema = field(default_factory=ModelSchema)  # type: ignore[valid-type]
    optim: OptimSchema = field(default_factory=OptimSchema)
    logging: LoggingSchema = field(default_factory=LoggingSchema, metadata={"on_resume": MAY_CHANGE})
    evaluation: EvaluationSchema = field(default_factory=EvaluationSchema, metadata={"on_resume": MAY_CHANGE})
    objective: ObjectiveSchema = field(default_factory=ObjectiveSchema)  # type: ignore[valid-type]
    name: str = setting()
    run_dir: str = setting(on_resume=MAY_CHANGE)
    seed: int = setting(NON_NEGATIVE)
    device: str = setting(DEVICE)
    resume: str | None = setting(on_resume=FROM_COMMAND)
    stop_at_step: int | None = setting(AT_LEAST_ONE, on_resume=FROM_COMMAND)
    time_budget_s: float | None = setting(POSITIVE, on_resume=FROM_COMMAND)
    overwrite: bool = setting(on_resume=FROM_COMMAND)


def schema_defaults() -> dict[str, Any]:
    """The schema's defaults: those it takes from the policy's dataclasses ('???' where the
    YAML files must give the value). A cache of trained runs hashes them with the YAML."""
    defaults = OmegaConf.to_container(OmegaConf.structured(TrainingSchema))
    assert isinstance(defaults, dict)
    return defaults  # type: ignore[return-value]


def register_schema() -> None:
    """Make `training_schema` (config.yaml's first default) known to Hydra; idempotent."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=TrainingSchema)


# -- looking keys up -----------------------------------------------------------------------


def _nested_schema(kind: Any) -> type | None:
    """The dataclass a field holds (or holds a list of), else None."""
    if dataclasses.is_dataclass(kind):
        return kind  # type: ignore[return-value]
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if dataclasses.is_dataclass(item):
            return item  # type: ignore[return-value]
    return None


def _fields(schema: type) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(schema)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(schema)}


def _path_fields(key: str) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    """The schema fields along a dotted key (list indices skipped), root first; stops at
    the first part the schema does not declare."""
    schema: type | None = TrainingSchema
    for part in key.split("."):
        if schema is None:
            return
        if part.isdigit():
            continue
        entry = _fields(schema).get(part)
        if entry is None:
            return
        yield entry
        schema = _nested_schema(entry[1])


def on_resume(key: str) -> str:
    """MUST_MATCH, MAY_CHANGE or FROM_COMMAND for a dotted key: the first field along the key
    that says otherwise decides (logging.* may change because `logging` may)."""
    for schema_field, _ in _path_fields(key):
        policy = schema_field.metadata.get("on_resume", MUST_MATCH)
        if policy != MUST_MATCH:
            return policy
    return MUST_MATCH


def resume_changeable_keys() -> str:
    """The keys a resumed run takes from the command, as a message lists them."""
    keys: list[str] = []

    def visit(schema: type, prefix: str) -> None:
        for name, (schema_field, kind) in _fields(schema).items():
            policy = schema_field.metadata.get("on_resume", MUST_MATCH)
            nested = _nested_schema(kind)
            if policy != MUST_MATCH:
                keys.append(f"{prefix}{name}.*" if nested else f"{prefix}{name}")
            elif nested is not None:
                visit(nested, f"{prefix}{name}.")

    visit(TrainingSchema, "")
    return ", ".join(keys)


def expected_type(key: str) -> str:
    """How the schema's type of a key reads in a message, e.g. 'a number'; a key such as
    'task.action[0]' names an item of a list."""
    dotted = re.sub(r"\[\d+\]$", "", key)
    dotted = re.sub(r"\[(\d+)\]", r".\1", dotted)
    kinds = [kind for _, kind in _path_fields(dotted)]
    if len(kinds) != len([p for p in dotted.split(".") if not p.isdigit()]):
        return "a known key"
    kind = kinds[-1]
    if dotted != key and typing.get_origin(kind) in (list, tuple):
        kind = typing.get_args(kind)[0]
    return _describe_type(kind)


def _describe_type(kind: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if kind in names:
        return names[kind]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return f"{_describe_type(inner)} or null"
    if origin in (list, tuple):
        plurals = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
        if dataclasses.is_dataclass(args[0]):
            return "a list of mappings with keys " + ", ".join(_fields(args[0]))  # type: ignore[arg-type]
        return f"a list of {plurals.get(args[0], args[0])}"
    if dataclasses.is_dataclass(kind):
        return "a mapping with keys " + ", ".join(_fields(kind))  # type: ignore[arg-type]
    return str(kind)


def unknown_key_message(key: str, where: str = "") -> str:
    """'<key> is not a configuration key' with a close match and the keys its section has;
    `where` (e.g. ' (in my_task.yaml)') follows the key."""
    section, _, name = key.rpartition(".")
    schema: type | None = TrainingSchema
    if section:
        fields_along = list(_path_fields(section))
        schema = _nested_schema(fields_along[-1][1]) if fields_along else None
    if schema is None:
        return f"{key} is not a configuration key{where}"
    known = list(_fields(schema))
    section_keys = f"{section} has" if section else "top-level keys are"
    return f"{key} is not a configuration key{_close_match(name, known)}{where}; {section_keys}: {', '.join(known)}"


def _close_match(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# -- checking a composed configuration ------------------------------------------------------


def config_problems(config: DictConfig) -> list[str]:
    """Every key of `config` that is unset, undeclared or out of range, one line each."""
    return list(_problems(config, TrainingSchema, ""))


def _problems(node: DictConfig, schema: type, prefix: str) -> Iterator[str]:
    declared = _fields(schema)
    for key in node:
        if key not in declared:
            yield unknown_key_message(f"{prefix}{key}")
    for name, (schema_field, kind) in declared.items():
        key = f"{prefix}{name}"
        if name not in node or OmegaConf.is_missing(node, name):
            yield f"{key} is not set (expected {_describe_type(kind)})"
            continue
        value = node[name]
        nested = _nested_schema(kind)
        if nested is not None and isinstance(value, DictConfig):
            yield from _problems(value, nested, f"{key}.")
        elif nested is not None and isinstance(value, ListConfig):
            for index, item in enumerate(value):
                yield from _problems(item, nested, f"{key}.{index}.")
        check: Check | None = schema_field.metadata.get("check")
        if check is None or value is None:
            continue
        plain = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        if not check.test(plain):
            yield f"{key}={plain!r} must be {check.expected}"
