"""resume=<run_dir> restores the run's own configuration; a command may add only what
cannot change the trained weights, and is refused, naming each key, when it would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from training.config import compose_config
from training.train import main

from .helpers import assert_same_training_state, tiny_overrides


def _fake_run(run_dir: Path, overrides: list[str]) -> Path:
    """A run directory as `dfstack train` leaves it, as far as composing a resume reads it:
    the resolved configuration and a resume state (its content is the trainer's business)."""
    (run_dir / "resume").mkdir(parents=True)
    (run_dir / "resume" / "state.json").write_text("{}")
    config = compose_config([*overrides, f"run_dir={run_dir}"])
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
    return run_dir


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    overrides = tiny_overrides(tmp_path / "data.zarr", tmp_path / "run", **{"optim.lr": 5e-3, "stop_at_step": 3})
    return _fake_run(tmp_path / "run", overrides)


def test_resume_restores_the_runs_own_configuration(tiny_run: Path) -> None:
    config = compose_config([f"resume={tiny_run}"])
    assert (config.model.variant, config.model.latent_dim, config.optim.lr) == ("tiny", 32, 5e-3)
    assert config.task.dataset == str(tiny_run.parent / "data.zarr")
    assert config.run_dir == str(tiny_run)
    # stop_at_step is about the invocation that stopped, not about the run.
    assert config.stop_at_step is None


def test_resume_given_the_resume_folder_or_from_elsewhere_writes_into_the_run(
    tiny_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_run / "resume")
    assert compose_config(["resume=."]).run_dir == str(Path.cwd().parent)


def test_resume_takes_what_cannot_change_the_weights(tiny_run: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved.zarr"
    config = compose_config(
        [
            f"resume={tiny_run}",
            "stop_at_step=5",
            "time_budget_s=30",
            "logging.log_every=1",
            "evaluation.val_batches=2",
            f"task.dataset={moved}",  # the resume state's dataset fingerprint still guards the data
            f"run_dir={tmp_path / 'continued'}",
        ]
    )
    assert (config.stop_at_step, config.time_budget_s, config.logging.log_every) == (5, 30.0, 1)
    assert (config.evaluation.val_batches, config.task.dataset) == (2, str(moved))
    assert config.run_dir == str(tmp_path / "continued")
    assert (config.model.variant, config.optim.lr) == ("tiny", 5e-3)


def test_resume_accepts_the_runs_own_settings_given_again(tiny_run: Path) -> None:
    config = compose_config([f"resume={tiny_run}", "model=tiny", "optim.lr=5e-3", "model.latent_dim=32"])
    assert config.model.latent_dim == 32


def test_resume_refuses_a_conflicting_override_naming_both_values(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (tiny_run / "config.yaml").read_text()
    elsewhere = tmp_path / "elsewhere"
    status = main([f"resume={tiny_run}", "model.latent_dim=48", "optim.lr=1e-3", f"run_dir={elsewhere}"])
    message = capsys.readouterr().err
    assert status == 2
    assert "model.latent_dim: run has 32, command has 48" in message
    assert "optim.lr: run has 0.005, command has 0.001" in message
    assert "stop_at_step" in message  # what a resumed run may be given
    assert not elsewhere.exists()
    assert (tiny_run / "config.yaml").read_text() == before


def test_resume_refuses_another_preset(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"resume={tiny_run}", "model=df"]) == 2
    assert "model.variant: run has 'tiny', command has 'df'" in capsys.readouterr().err


def test_resume_compares_what_an_experiment_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _fake_run(tmp_path / "run", ["experiment=swap_fruit_memoryless"])
    assert compose_config([f"resume={run}", "experiment=swap_fruit_memoryless"]).model.memory == "memoryless"
    assert main([f"resume={run}", "experiment=swap_fruit"]) == 2
    assert "model.memory: run has 'memoryless', command has 'recurrent'" in capsys.readouterr().err


def test_resume_without_the_runs_configuration(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_run / "config.yaml").unlink()
    assert main([f"resume={tiny_run}"]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_resume_of_a_configuration_with_a_key_this_version_lacks(
    tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = OmegaConf.load(tiny_run / "config.yaml")
    saved.task.retired_key = 1
    (tiny_run / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    assert main([f"resume={tiny_run}"]) == 2
    assert "task.retired_key" in capsys.readouterr().err


def test_resume_from_the_run_directory_alone_continues_bit_for_bit(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = {"optim.total_steps": 6, "optim.ema_decay": 0.5}
    assert main(tiny_overrides(tiny_store, tmp_path / "straight", **common)) == 0
    assert main(tiny_overrides(tiny_store, tmp_path / "split", stop_at_step=3, **common)) == 0
    capsys.readouterr()
    assert main([f"resume={tmp_path / 'split'}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["step"] == 6
    assert_same_training_state(tmp_path / "straight", tmp_path / "split")


def test_resume_from_a_directory_without_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"resume={tmp_path / 'nowhere'}"]) == 2
    assert "no resume/state.json there" in capsys.readouterr().err
