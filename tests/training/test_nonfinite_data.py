"""A NaN or infinity in a dataset's vector streams is refused before any training step,
with a message naming the episode, the stream and the first bad sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from training.config import TrainingConfigError, compose_config
from training.train import main
from training.trainer import Trainer

from .helpers import make_store, tiny_overrides


def poison(dataset: Path, episode: str, stream: str, index: int) -> None:
    """One NaN behind the store's back, where an importer bug would leave it."""
    array = zarr.open_array(str(dataset / "episodes" / episode / stream / "data"), mode="r+")
    row = np.asarray(array[index])
    row[0] = np.nan
    array[index] = row


@pytest.fixture
def poisoned_store(tmp_path: Path) -> Path:
    dataset = make_store(tmp_path / "poisoned.zarr")
    poison(dataset, "ep_000001", "command", 5)
    return dataset


EXPECTED = (
    r"poisoned\.zarr: ep_000001: stream 'command' has NaN or infinite values in 1 of 32 samples, "
    r"the first at sample 5 \(x=nan\)\. Delete that episode"
)


def test_trainer_refuses_a_non_finite_sample_naming_episode_and_stream(poisoned_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(TrainingConfigError, match=EXPECTED):
        Trainer(compose_config(tiny_overrides(poisoned_store, run)))
    assert not (run / "checkpoints").exists(), "nothing may be written before the data is accepted"


def test_train_command_exits_2_with_the_message(
    poisoned_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(tiny_overrides(poisoned_store, tmp_path / "run")) == 2
    error = capsys.readouterr().err
    assert "dfstack train: " in error and "ep_000001: stream 'command'" in error and "Traceback" not in error
