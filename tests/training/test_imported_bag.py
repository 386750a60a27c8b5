"""A rosbag imported as docs/data_collection.md shows trains with no Python: the mapping
file names the training streams, the task config reads them (task.streams)."""

from __future__ import annotations

import json
from pathlib import Path

from data_collection.cli import main as data_cli
from data_collection.store import EpisodeStore
from tests.data_collection import bags
from training.train import main as train

from .helpers import tiny_overrides


def _imported_store(tmp_path: Path) -> Path:
    mapping = tmp_path / "franka_bag.yaml"
    mapping.write_text(bags.MAPPING_YAML)
    store = tmp_path / "imported.zarr"
    assert data_cli(["create", str(store), "--policy-size", "16x16"]) == 0
    for number in range(2):
        demo = bags.franka_demo(count=80, start_s=100.0 * (number + 1))
        bag = bags.write_bag(tmp_path / f"bag{number}", "mcap", demo)
        assert data_cli(["import-rosbag", str(store), str(bag), "--mapping", str(mapping)]) == 0
    return store


def test_an_imported_bag_trains_once_task_streams_names_its_width_stream(tmp_path, capsys):
    store = _imported_store(tmp_path)
    capsys.readouterr()
    common = tiny_overrides(store, tmp_path / "run", **{"task.cameras": "[front]", "optim.total_steps": 3})
    assert train([*common, "--json"]) == 2
    err = capsys.readouterr().err
    assert "command stream 'command' has 7 values, no gripper width" in err
    assert "set task.streams.command_gripper=command_width" in err  # the fix, from the episode's mapping
    assert train([*common, "task.streams.command_gripper=command_width", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 3
    assert EpisodeStore.open(store).validate().ok
