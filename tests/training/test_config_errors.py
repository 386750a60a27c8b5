"""Bad input is refused with a clear message before any training step."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import TrainingConfigError, compose_config, group_choices, model_config, objective_config
from training.train import main
from training.trainer import Trainer

from .helpers import make_store, tiny_overrides


def test_baselines_are_presets_of_the_same_model() -> None:
    df = model_config(compose_config(["experiment=swap_fruit"]))
    memoryless = model_config(compose_config(["experiment=swap_fruit_memoryless"]))
    teacher = model_config(compose_config(["experiment=swap_fruit_teacher_forcing"]))
    assert (df.memory, df.context) == ("recurrent", "diffusion_forcing")
    assert memoryless.memory == "memoryless"
    assert teacher.context == "teacher_forcing"
    # Nothing else differs: same architecture, same sizes.
    same = {k: v for k, v in df.to_dict().items() if k not in ("memory", "context")}
    assert {k: memoryless.to_dict()[k] for k in same} == same
    assert {k: teacher.to_dict()[k] for k in same} == same


def _refused(overrides: list[str], match: str, run_dir: Path) -> None:
    with pytest.raises(TrainingConfigError, match=match):
        Trainer(compose_config(overrides))
    assert not (run_dir / "checkpoints").exists(), "nothing may be written before the configuration is accepted"


def test_missing_dataset(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _refused(tiny_overrides(tmp_path / "nowhere.zarr", run), "does not exist", run)


def test_camera_the_robot_lacks(tiny_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _refused(tiny_overrides(tiny_store, run, **{"task.cameras": "[front,side]"}), r"has no camera 'side'", run)


def test_a_robot_whose_embodiment_the_dataset_does_not_record(tiny_store: Path, tmp_path: Path) -> None:
    import yaml

    from robots.description import robot_description_path

    joint_robot = yaml.safe_load(robot_description_path("fr3_sim").read_text())
    joint_robot.update(embodiment="joint_position", command={"sink": "joint_trajectory", "topic": "joints"})
    (tmp_path / "joint_robot.yaml").write_text(yaml.safe_dump(joint_robot))
    run = tmp_path / "run"
    overrides = tiny_overrides(tiny_store, run, **{"task.robot": str(tmp_path / "joint_robot.yaml")})
    _refused(overrides, r"lacks the stream\(s\) \['joint_command'\]", run)


def test_existing_run_is_not_overwritten(tiny_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(compose_config(tiny_overrides(tiny_store, run, **{"optim.total_steps": 1}))).train()
    _refused(tiny_overrides(tiny_store, run), "already holds a training state", tmp_path / "elsewhere")


def test_unknown_override_and_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TrainingConfigError, match=r"optim\.no_such_key is not a configuration key"):
        compose_config(["optim.no_such_key=1"])
    assert main(["model=nonexistent"]) == 2
    assert main(tiny_overrides(tmp_path / "missing.zarr", tmp_path / "run")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_and_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "experiment=swap_fruit" in capsys.readouterr().out
    assert main(["--cfg", "model=memoryless"]) == 0
    assert "memory: memoryless" in capsys.readouterr().out


def test_store_without_wrist_camera_is_named(tmp_path: Path) -> None:
    store = make_store(tmp_path / "front_only.zarr", episodes=1, tokens=3, cameras=("front",))
    run = tmp_path / "run"
    _refused(tiny_overrides(store, run), r"has cameras \['front'\]", run)


# -- refused at the door: through the real entry point, before the dataset is opened ---------


def _refused_at_the_door(
    overrides: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], *expected: str
) -> str:
    """Run `dfstack train` on a dataset that does not exist: a configuration error must
    come first (exit 2), name everything in `expected`, and leave no run directory."""
    run = tmp_path / "run"
    status = main([*tiny_overrides(tmp_path / "no_dataset_here.zarr", run), *overrides])
    message = capsys.readouterr().err
    assert status == 2, message
    assert "does not exist" not in message, "the configuration must be refused before the dataset is opened"
    for text in expected:
        assert text in message, f"{text!r} missing from: {message}"
    assert not run.exists(), "nothing may be written for a refused configuration"
    return message


@pytest.mark.parametrize("group", ["experiment", "task", "model", "optim", "logging", "evaluation"])
def test_unknown_group_option_names_the_group_and_its_choices(
    group: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    choices = group_choices()[group]
    _refused_at_the_door([f"{group}=no_such_option"], tmp_path, capsys, f"{group}=no_such_option", *choices)


def test_misspelt_experiment_is_refused_with_the_close_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `experiment` defaults to none: an unknown name must not quietly train the defaults.
    _refused_at_the_door(["experiment=swapfruit"], tmp_path, capsys, "experiment=swapfruit", "did you mean swap_fruit?")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optim.lr=abc", ["optim.lr=abc", "is not a number"]),
        ("optim.lr=-1", ["optim.lr=-1.0", "must be > 0"]),
        ("seed=x", ["seed=x", "is not an integer"]),
        ("seed=-3", ["seed=-3", "must be >= 0"]),
        ("logging.progress=maybe", ["logging.progress=maybe", "true or false"]),
        ("task.actions_per_token=0", ["task.actions_per_token", "must be >= 1, got 0"]),
        ("task.val_fraction=1.5", ["task.val_fraction=1.5", "must be in [0, 1)"]),
        ("task.cameras=front", ["task.cameras=front", "is not a list of strings"]),
        ("model.prediction=eps", ["model.prediction='eps'", "one of 'x0', 'v'"]),
        ("model.memory_window=0", ["model.memory_window", ">= 1, got 0"]),
        ("objective.burst_prob=2", ["objective.burst_prob", "[0, 1], got 2.0"]),
        ("optim.amp=fp32", ["optim.amp='fp32'", "one of 'auto', 'bf16', 'fp16', 'off'"]),
        ("optim.betas=[0.9]", ["optim.betas=[0.9]", "two numbers in [0, 1)"]),
        ("device=gpu", ["device='gpu'", "auto, cpu, cuda or cuda:N"]),
        ("evaluation.runner.horizon=0", ["evaluation.runner.horizon", ">= 1"]),
        ("model.encoder_channels=[8,x]", ["model.encoder_channels[1]='x'", "is not an integer"]),
        ("task.cameras=[]", ["task.cameras=[]", "must be a non-empty list"]),
        ("task.image_size=4", ["task.image_size=4", "a number of pixels >= 8 or [height, width]"]),
        ("task.image_size=[24,32,3]", ["task.image_size=[24, 32, 3]", "a number of pixels >= 8 or [height, width]"]),
        ("+task.crops.front=[0,0,8]", ["task.crops", "[top, left, height, width]"]),
        ("task.channels=2", ["task.channels=2", "one of 1, 3"]),
        ("task.robot=fr4", ["unknown robot description 'fr4'", "fr3_sim"]),
        ("task.action=[]", ["task.action is not a configuration key"]),
    ],
)
def test_wrong_type_or_range_names_key_value_and_expectation(
    override: str, expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _refused_at_the_door([override], tmp_path, capsys, *expected)


@pytest.mark.parametrize(
    "override", ["optim.learning_rate=1e-3", "+optim.learning_rate=1e-3", "optim.learning_rate.warmup=1"]
)
def test_unknown_key_names_the_section_keys(override: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused_at_the_door([override], tmp_path, capsys, "optim.learning_rate is not a configuration key", "lr, ")


def test_misspelt_key_gets_the_close_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused_at_the_door(["task.actions_per_tokn=4"], tmp_path, capsys, "did you mean actions_per_token?")


def test_every_builtin_option_fits_the_schema() -> None:
    # The schema (training/schema.py) and the YAML files must agree on every key: an
    # option with a key the schema lacks, or missing one it declares, fails here.
    for group, options in group_choices().items():
        for option in options:
            compose_config([f"{group}={option}"])


def test_help_lists_every_group_and_its_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for group, options in group_choices().items():
        assert f"{group}={'|'.join(options)}" in out
    assert "task=/path/to/my_task.yaml" in out


# -- a task (or experiment) file outside the repository ----------------------------------------

MY_TASK = """\
# My own task: the built-in swap fruit at other rates.
defaults:
  - swap_fruit_sim
  - _self_
name: my_task
actions_per_token: 4
token_period_s: 0.4
"""


def test_task_file_outside_the_repository_trains(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = tmp_path / "elsewhere" / "my_task.yaml"
    task.parent.mkdir()
    task.write_text(MY_TASK)
    config = compose_config([f"task={task}"])
    assert (config.task.name, config.task.actions_per_token, config.task.token_period_s) == ("my_task", 4, 0.4)
    assert config.task.cameras == ["front", "wrist"]  # the rest from swap_fruit_sim
    run = tmp_path / "run"
    overrides = tiny_overrides(tiny_store, run, **{"optim.total_steps": 2})
    assert main([f"task={task}", *overrides, "--json"]) == 0
    assert '"step": 2' in capsys.readouterr().out
    assert "actions_per_token: 4" in (run / "config.yaml").read_text()


def test_task_file_named_like_a_builtin_task_extends_it(tmp_path: Path) -> None:
    task = tmp_path / "swap_fruit_sim.yaml"
    task.write_text("defaults:\n  - swap_fruit_sim\n  - _self_\nimage_size: 48\n")
    config = compose_config([f"task={task}"])
    assert (config.task.name, config.task.image_size) == ("swap_fruit_sim", 48)


def test_experiment_file_outside_the_repository(tmp_path: Path) -> None:
    experiment = tmp_path / "my_experiment.yaml"
    experiment.write_text(
        "# @package _global_\ndefaults:\n  - override /model: tiny\nname: mine\noptim:\n  lr: 1.0e-3\n"
    )
    config = compose_config([f"experiment={experiment}"])
    assert (config.name, config.model.variant, config.optim.lr) == ("mine", "tiny", 1.0e-3)


def test_task_file_is_checked_like_a_builtin_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text("defaults:\n  - swap_fruit_sim\n  - _self_\nactions_per_tokn: 4\n")
    _refused_at_the_door(
        [f"task={misspelt}"],
        tmp_path,
        capsys,
        "task.actions_per_tokn",
        "did you mean actions_per_token?",
        str(misspelt),
    )
    wrong_type = tmp_path / "wrong_type.yaml"
    wrong_type.write_text("defaults:\n  - swap_fruit_sim\n  - _self_\nhold_tokens_after_end: many\n")
    _refused_at_the_door(
        [f"task={wrong_type}"], tmp_path, capsys, "task.hold_tokens_after_end='many' is not an integer"
    )
    out_of_range = tmp_path / "out_of_range.yaml"
    out_of_range.write_text("defaults:\n  - swap_fruit_sim\n  - _self_\nactions_per_token: 0\n")
    _refused_at_the_door([f"task={out_of_range}"], tmp_path, capsys, "task.actions_per_token must be >= 1")
    partial = tmp_path / "partial.yaml"
    partial.write_text("name: partial\ndataset: data/partial.zarr\n")
    _refused_at_the_door([f"task={partial}"], tmp_path, capsys, "task.cameras is not set", "task.robot is not set")


def test_task_file_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused_at_the_door([f"task={tmp_path / 'nowhere.yaml'}"], tmp_path, capsys, "no such file")


def test_hydra_search_path_still_finds_a_task_folder(tmp_path: Path) -> None:
    # Hydra's own way (a config root with a task/ folder) keeps working beside task=PATH.
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "legacy.yaml").write_text("defaults:\n  - swap_fruit_sim\n  - _self_\nname: legacy\n")
    config = compose_config([f"hydra.searchpath=[file://{tmp_path}]", "task=legacy"])
    assert config.task.name == "legacy"


def test_sections_fed_to_a_dataclass_take_its_keys_and_defaults() -> None:
    # One fact, one place: the schema copies these from the dataclass, and an unset key
    # (config.yaml leaves `objective` empty) gets the dataclass's default.
    from dataclasses import MISSING, fields

    from policy.model import ModelConfig
    from policy.objective import ObjectiveConfig
    from policy.runner import RunnerConfig
    from training.data import AugmentationConfig
    from training.schema import AugmentationSchema, ModelSchema, ObjectiveSchema, RunnerSchema

    def defaults(cls: type) -> dict[str, object]:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    for schema, source in [
        (ModelSchema, ModelConfig),
        (ObjectiveSchema, ObjectiveConfig),
        (RunnerSchema, RunnerConfig),
        (AugmentationSchema, AugmentationConfig),
    ]:
        assert {k: v for k, v in defaults(schema).items() if k != "variant"} == defaults(source)
    assert objective_config(compose_config([])) == ObjectiveConfig()


def test_the_benchmark_cache_sees_the_defaults_the_schema_takes_from_dataclasses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # config.yaml leaves `objective` to ObjectiveConfig: a change of its defaults must
    # still retrain bench-paper's cached runs.
    from benchmarks import bench_paper
    from training import schema

    before = bench_paper._training_config_digest()
    changed = schema.schema_defaults()
    changed["objective"]["future_token_prob"] = 0.25
    monkeypatch.setattr(schema, "schema_defaults", lambda: changed)
    assert bench_paper._training_config_digest() != before
