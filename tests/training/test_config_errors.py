"""Bad input is refused with a clear message before any training step."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import TrainingConfigError, compose_config, model_config
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


def test_resume_from_an_incompatible_run(tiny_store: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    trainer = Trainer(compose_config(tiny_overrides(tiny_store, first, **{"optim.total_steps": 1})))
    trainer.train()
    second = tmp_path / "second"
    overrides = tiny_overrides(tiny_store, second, resume=first, **{"model.latent_dim": 48})
    _refused(overrides, r"model\.latent_dim: run has 32, configuration has 48", second)


def test_existing_run_is_not_overwritten(tiny_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(compose_config(tiny_overrides(tiny_store, run, **{"optim.total_steps": 1}))).train()
    _refused(tiny_overrides(tiny_store, run), "already holds a training state", tmp_path / "elsewhere")


def test_unknown_override_and_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TrainingConfigError, match="invalid configuration override"):
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
