"""The trainer on a tiny synthetic store: overfitting, exact resume, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policy.checkpoint import load_checkpoint
from policy.runner import Observation, PolicyRunner
from training.config import TrainingConfigError, build_evaluator, compose_config
from training.trainer import Trainer

from .helpers import assert_same_training_state, tiny_overrides


def _train(overrides: list[str], evaluate: object = None) -> tuple[Trainer, object]:
    config = compose_config(overrides)
    trainer = Trainer(config, evaluate=evaluate if evaluate is not None else build_evaluator(config))
    result = trainer.train()
    trainer.close()
    return trainer, result


def test_overfitting_one_episode_drives_the_loss_near_zero(tiny_store: Path, tmp_path: Path) -> None:
    trainer, result = _train(
        tiny_overrides(
            tiny_store,
            tmp_path / "run",
            **{
                "task.max_episodes": 1,
                "task.augmentation.shift_px": 0,
                "optim.total_steps": 250,
                "optim.lr": 5e-3,
                "optim.ema_decay": 0.9,
                "logging.log_every": 10,
            },
        )
    )
    first = result.history[0]["loss"]
    # Every random draw is fixed, so measure the trained model on its own episode with
    # fixed noise, averaged over the whole episode.
    trainer.val_data = trainer.train_data
    final = trainer.validation_loss(trainer.model)
    assert final is not None
    assert final < 0.03, f"loss {first:.4f} -> {final:.4f}"
    assert final < 0.1 * first


def test_resume_is_exact(tiny_store: Path, tmp_path: Path) -> None:
    common = {"optim.total_steps": 8, "optim.ema_decay": 0.5}
    _train(tiny_overrides(tiny_store, tmp_path / "straight", **common))
    _, first_half = _train(tiny_overrides(tiny_store, tmp_path / "split", stop_at_step=4, **common))
    assert first_half.step == 4
    _, second_half = _train(tiny_overrides(tiny_store, tmp_path / "split", resume=tmp_path / "split", **common))
    assert second_half.step == 8
    assert_same_training_state(tmp_path / "straight", tmp_path / "split")


def test_checkpoint_loads_in_the_runtime_and_holds_the_fitted_normalizer(tiny_store: Path, tmp_path: Path) -> None:
    trainer, result = _train(tiny_overrides(tiny_store, tmp_path / "run", **{"optim.total_steps": 3}))
    loaded = load_checkpoint(result.latest_checkpoint, expected_spec=trainer.spec)
    np.testing.assert_allclose(loaded.normalizer.action_low, trainer.normalizer.action_low)
    assert loaded.metadata["training_step"] == 3 and loaded.metadata["weights"] == "ema"
    assert loaded.config["model"]["variant"] == "tiny"
    runner = PolicyRunner(loaded.model, loaded.normalizer)
    frame = np.zeros((16, 16, 3), np.uint8)
    chunk = runner.step(Observation(0.0, {"front": frame, "wrist": frame}, proprio=np.zeros(10)))
    horizon = runner.config.horizon
    assert chunk.actions.shape == (horizon * trainer.spec.actions_per_token, 10) and np.all(np.isfinite(chunk.actions))


def test_validation_loss_selects_a_best_checkpoint(tiny_store: Path, tmp_path: Path) -> None:
    _, result = _train(
        tiny_overrides(
            tiny_store,
            tmp_path / "run",
            **{"task.val_fraction": 0.5, "optim.total_steps": 4, "evaluation.every_steps": 2, "optim.batch_size": 1},
        )
    )
    assert result.val_loss is not None and result.best_checkpoint is not None
    assert load_checkpoint(result.best_checkpoint).metadata["val_loss"] == pytest.approx(result.best_val_loss)


class _RecordingEvaluator:
    """Stands in for the closed-loop evaluation: records what the trainer hands it."""

    def __init__(self, success_rate: float) -> None:
        self.success_rate = success_rate
        self.calls: list[tuple[object, object, Path | None]] = []

    def __call__(self, model: object, normalizer: object, video_path: Path | None) -> object:
        from types import SimpleNamespace

        self.calls.append((model, normalizer, video_path))
        summary = {"success_rate": self.success_rate, "episodes": 3}
        return SimpleNamespace(summary=lambda: summary, to_dict=lambda: {**summary, "per_episode": []})


def test_the_given_evaluation_is_what_runs_on_the_ema_weights(tiny_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    evaluate = _RecordingEvaluator(0.75)
    extra = {"optim.total_steps": 2, "evaluation.sim_episodes": 3, "evaluation.sim_video": False}
    trainer, result = _train(tiny_overrides(tiny_store, run, **extra), evaluate)
    assert len(evaluate.calls) == 1  # at the end (evaluation.every_steps=0)
    model, normalizer, video = evaluate.calls[0]
    assert model is trainer.ema.model and normalizer is trainer.normalizer and video is None
    assert result.sim == {"success_rate": 0.75, "episodes": 3} and result.best_sim_success == 0.75
    assert (run / "eval" / "step_0000002.json").is_file()
    assert load_checkpoint(result.best_sim_checkpoint).metadata["sim_success_rate"] == 0.75


def test_closed_loop_episodes_without_an_evaluation_are_refused(tiny_store: Path, tmp_path: Path) -> None:
    config = compose_config(tiny_overrides(tiny_store, tmp_path / "run", **{"evaluation.sim_episodes": 2}))
    with pytest.raises(TrainingConfigError, match="build_evaluator"):
        Trainer(config)
    assert build_evaluator(compose_config(tiny_overrides(tiny_store, tmp_path / "run"))) is None  # 0 episodes: none
    foggy = {"evaluation.sim_episodes": 2, "evaluation.sim_fault_plan": "fog"}
    bad = compose_config(tiny_overrides(tiny_store, tmp_path / "run", **foggy))
    with pytest.raises(TrainingConfigError, match="fog"):
        build_evaluator(bad)  # checked before training starts, not at the first evaluation


@pytest.mark.sim
def test_evaluation_hook_runs_closed_loop_episodes(tiny_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    extra = {"optim.total_steps": 2, "evaluation.sim_episodes": 1, "evaluation.sim_max_steps": 8}
    trainer, result = _train(tiny_overrides(tiny_store, run, **extra))
    assert result.sim is not None and result.sim["episodes"] == 1 and 0.0 <= result.sim["success_rate"] <= 1.0
    assert (run / "eval" / "step_0000002.json").is_file()
    assert (run / "eval" / "step_0000002.gif").stat().st_size > 0

    # best_sim follows the closed-loop success: kept on a drop, replaced on a tie or a rise.
    assert result.best_sim_checkpoint is not None and result.best_sim_success == result.sim["success_rate"]
    best_sim = result.best_sim_checkpoint
    assert load_checkpoint(best_sim).metadata["training_step"] == 2
    trainer._keep_if_best_sim(0.5, None)
    trainer.step = 3
    trainer._keep_if_best_sim(0.25, None)
    metadata = load_checkpoint(best_sim).metadata
    assert metadata["sim_success_rate"] == 0.5 and metadata["training_step"] == 2
    trainer._keep_if_best_sim(0.5, None)
    assert load_checkpoint(best_sim).metadata["training_step"] == 3


def test_time_budget_stops_the_run_with_a_decayed_rate_and_a_metrics_log(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import time

    run = tmp_path / "budget"
    started = time.perf_counter()
    trainer, result = _train(
        tiny_overrides(
            tiny_store,
            run,
            time_budget_s=1.0,
            **{"optim.total_steps": 10**6, "logging.log_every": 1, "logging.progress": True},
        )
    )
    # The bar counts the budget, not the step cap (which would promise days of training).
    progress = capsys.readouterr().err
    assert "of the time budget" in progress and "100%" in progress
    assert "/1000000" not in progress
    assert time.perf_counter() - started < 30.0
    assert 0 < result.step < 10**6  # stopped by the budget, not the step count
    lr = trainer.optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(trainer.config.optim.lr * trainer.config.optim.min_lr_ratio, rel=0.05)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, result.step + 1))
    assert all(np.isfinite(r["loss"]) and r["elapsed_s"] >= 0 for r in records if "loss" in r)
    assert records[-1]["step"] == result.step and "val_loss" in records[-1]
    assert (run / "checkpoints" / "latest" / "model.safetensors").exists()


def test_a_non_positive_time_budget_is_refused(tiny_store: Path, tmp_path: Path) -> None:
    from training.config import TrainingConfigError

    with pytest.raises(TrainingConfigError, match="time_budget_s"):
        Trainer(compose_config(tiny_overrides(tiny_store, tmp_path / "run", time_budget_s=0)))
