"""Hostile and damaged checkpoints: every one is refused with a CheckpointError that names
the file and the cause (never a SafetensorError or other raw traceback), and checkpoints
written before the manifest still load, with a warning, until upgraded."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from policy.checkpoint import (
    CheckpointError,
    LegacyCheckpointWarning,
    load_checkpoint,
    main,
    save_checkpoint,
    upgrade_checkpoint,
)
from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer
from training.config import task_policy_spec

SMALL = ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8,), frame_prediction_size=8, num_levels=50)
CONTENT = ("config.yaml", "metadata.json", "model.safetensors", "normalizer.safetensors")


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = DFPolicyModel(task_policy_spec(["task.image_size=32"]), SMALL)
    rng = np.random.default_rng(0)
    normalizer = Normalizer.fit(rng.normal(size=(50, 10)), rng.normal(size=(50, 10)))
    return save_checkpoint(tmp_path / "ckpt", model, normalizer, config={"lr": 3e-4}, metadata={"step": 7})


def reseal(path: Path) -> None:
    """Rewrite the manifest to match the files as they are now: what someone who edits a
    checkpoint by hand (or on purpose) would do, so only the content checks can catch it."""
    files = {}
    for name in CONTENT:
        data = (path / name).read_bytes()
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = {"format": "df-stack-checkpoint-manifest", "algorithm": "sha256", "files": files}
    (path / "manifest.json").write_text(json.dumps(manifest))


def rewritten(name: str, content: str | bytes) -> Callable[[Path], None]:
    """Replace one file's content and reseal the manifest, so only the parsers can object."""

    def corrupt(path: Path) -> None:
        (path / name).write_bytes(content.encode() if isinstance(content, str) else content)
        reseal(path)

    return corrupt


def make_legacy(path: Path) -> None:
    """A checkpoint as format version 1 wrote it: no manifest."""
    (path / "manifest.json").unlink()
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["format_version"] = 1
    (path / "metadata.json").write_text(json.dumps(metadata))


def torch_save_bytes(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def nan_weights(path: Path, count: int = 1000) -> None:
    state = load_file(str(path / "model.safetensors"))
    name = max(state, key=lambda key: state[key].numel() if state[key].is_floating_point() else 0)
    flat = state[name].view(-1)
    flat[:count] = float("nan")
    save_file(state, str(path / "model.safetensors"))


def edit_weights(path: Path, **changes: torch.Tensor | None) -> None:
    """Replace (or, given None, remove) named tensors of model.safetensors."""
    state = load_file(str(path / "model.safetensors"))
    for name, tensor in changes.items():
        state.pop(name, None)
        if tensor is not None:
            state[name] = tensor
    save_file(state, str(path / "model.safetensors"))


def test_manifest_records_sha256_and_size_of_every_file(checkpoint: Path) -> None:
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    assert manifest["format"] == "df-stack-checkpoint-manifest" and manifest["algorithm"] == "sha256"
    assert sorted(manifest["files"]) == sorted(CONTENT)
    for name, entry in manifest["files"].items():
        data = (checkpoint / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert json.loads((checkpoint / "metadata.json").read_text())["format_version"] == 2
    assert [p.name for p in checkpoint.parent.iterdir() if p.name.startswith(".")] == []  # no staging left


def truncate_weights(path: Path) -> None:
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])


def flip_weight_byte(path: Path) -> None:
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-10] ^= 0x01
    (path / "model.safetensors").write_bytes(bytes(data))


def plant_pickle(path: Path) -> None:
    (path / "model.safetensors").write_bytes(torch_save_bytes(load_file(str(path / "model.safetensors"))))


# (how the checkpoint is damaged, the words the error must hold: file name first)
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated-weights": (
        truncate_weights,
        r"model\.safetensors is \d+ bytes, manifest\.json records \d+: the file was cut short",
    ),
    "flipped-byte": (flip_weight_byte, r"model\.safetensors fails its sha256 checksum"),
    "pickle-planted": (plant_pickle, r"model\.safetensors is \d+ bytes.*replaced.*looks like a pickle"),
    "nan-weights-manifest-not-updated": (nan_weights, r"model\.safetensors fails its sha256 checksum"),
    "pickle-planted-manifest-rewritten": (
        lambda p: (plant_pickle(p), reseal(p)),
        r"model\.safetensors is not a valid safetensors file \(.*\)\. It looks like a pickle",
    ),
    "plain-pickle-manifest-rewritten": (
        lambda p: ((p / "model.safetensors").write_bytes(pickle.dumps({"w": [1.0]}, protocol=4)), reseal(p)),
        r"model\.safetensors is not a valid safetensors file.*pickle",
    ),
    "truncated-manifest-rewritten": (
        lambda p: (truncate_weights(p), reseal(p)),
        r"model\.safetensors is not a valid safetensors file",
    ),
    "nan-weights-manifest-rewritten": (
        lambda p: (nan_weights(p), reseal(p)),
        r"model\.safetensors holds NaN or infinite values in 1 tensor\(s\): \S+ \(1000 of \d+\)",
    ),
    "infinite-normaliser": (
        lambda p: (
            save_file(
                {**load_file(str(p / "normalizer.safetensors")), "action_high": torch.full((10,), float("inf"))},
                str(p / "normalizer.safetensors"),
            ),
            reseal(p),
        ),
        r"normalizer\.safetensors holds NaN or infinite values in 1 tensor\(s\): action_high \(10 of 10\)",
    ),
    "normaliser-of-the-wrong-size": (
        lambda p: (
            save_file(
                {**load_file(str(p / "normalizer.safetensors")), "proprio_low": torch.zeros(7, dtype=torch.float64)},
                str(p / "normalizer.safetensors"),
            ),
            reseal(p),
        ),
        r"normalizer\.safetensors has proprio ranges of shape \[7\] and \[10\], the spec in config\.yaml needs \[10\]",
    ),
    "normaliser-without-a-field": (
        lambda p: (save_file({"action_low": torch.zeros(10)}, str(p / "normalizer.safetensors")), reseal(p)),
        r"normalizer\.safetensors: normaliser file lacks \['action_high'",
    ),
    "weights-of-another-shape": (
        lambda p: (edit_weights(p, initial_latent=torch.zeros(5)), reseal(p)),
        r"model\.safetensors does not fit the model its config\.yaml describes "
        r"\(wrong shape \['initial_latent \[5\] \(model: \[32\]\)'\]\)",
    ),
    "weights-missing-and-extra-tensor": (
        lambda p: (edit_weights(p, initial_latent=None, backdoor=torch.ones(1)), reseal(p)),
        r"model\.safetensors does not fit the model its config\.yaml describes "
        r"\(missing \['initial_latent'\]; unexpected \['backdoor'\]\)",
    ),
    "metadata-not-json": (
        rewritten("metadata.json", "{'format': "),
        r"metadata\.json is not valid JSON",
    ),
    "metadata-a-list": (
        rewritten("metadata.json", "[1, 2]"),
        r"metadata\.json must hold a JSON object, got list",
    ),
    "metadata-binary": (
        rewritten("metadata.json", b"\xff\xfe\x00"),
        r"metadata\.json is not valid JSON",
    ),
    "config-not-yaml": (
        rewritten("config.yaml", "spec: [unclosed\nmodel: {"),
        r"config\.yaml is not valid YAML",
    ),
    "config-with-a-python-tag": (
        rewritten("config.yaml", "spec: !!python/object/apply:os.system ['true']\n"),
        r"config\.yaml is not valid YAML",
    ),
    "config-with-a-bad-model-section": (
        rewritten("config.yaml", "spec: {}\nmodel: 3\n"),
        r"config\.yaml: policy spec is malformed",
    ),
    "config-with-a-negative-size": (
        lambda p: (
            (p / "config.yaml").write_text((p / "config.yaml").read_text().replace("latent_dim: 32", "latent_dim: -5")),
            reseal(p),
        ),
        r"config\.yaml describes a model that cannot be built",
    ),
    "manifest-not-json": (
        lambda p: (p / "manifest.json").write_text("not json"),
        r"manifest\.json is not valid JSON",
    ),
    "manifest-without-an-entry": (
        lambda p: (p / "manifest.json").write_text(
            json.dumps({"format": "df-stack-checkpoint-manifest", "algorithm": "sha256", "files": {}})
        ),
        r"manifest\.json lists \[\], expected \['config\.yaml'",
    ),
    "manifest-entry-malformed": (
        lambda p: (p / "manifest.json").write_text(
            json.dumps(
                {
                    "format": "df-stack-checkpoint-manifest",
                    "algorithm": "sha256",
                    "files": {name: {"sha256": 1} for name in CONTENT},
                }
            )
        ),
        r"manifest\.json entry for \S+ must hold 'sha256' \(hex string\) and 'bytes' \(integer\)",
    ),
    "manifest-of-another-algorithm": (
        lambda p: (p / "manifest.json").write_text(
            (p / "manifest.json").read_text().replace('"algorithm": "sha256"', '"algorithm": "md5"')
        ),
        r"manifest\.json is not a df-stack-checkpoint-manifest with sha256 checksums",
    ),
    "manifest-deleted": (
        lambda p: (p / "manifest.json").unlink(),
        r"manifest\.json is missing, but metadata\.json says format version 2",
    ),
    "extra-file": (
        lambda p: (p / "model.pt").write_bytes(torch_save_bytes({"w": torch.ones(1)})),
        r"unexpected file\(s\) \['model\.pt'\]",
    ),
    "missing-file": (
        lambda p: (p / "config.yaml").unlink(),
        r"incomplete: missing \['config\.yaml'\]",
    ),
    "future-format-version": (
        lambda p: (
            (p / "metadata.json").write_text(
                (p / "metadata.json").read_text().replace('"format_version": 2', '"format_version": 9')
            ),
            reseal(p),
        ),
        r"format version 9, this code reads 1 and 2",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_refused_naming_file_and_cause(checkpoint: Path, damage: str) -> None:
    corrupt, message = DAMAGE[damage]
    corrupt(checkpoint)
    with pytest.raises(CheckpointError, match=message) as raised:
        load_checkpoint(checkpoint)
    assert str(checkpoint) in str(raised.value)
    assert " at 0x" not in str(raised.value)  # no object reprs


def test_nan_weights_in_a_legacy_checkpoint_are_refused(checkpoint: Path) -> None:
    make_legacy(checkpoint)
    nan_weights(checkpoint)
    with pytest.warns(LegacyCheckpointWarning), pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(checkpoint)


def test_legacy_checkpoint_loads_with_a_warning_until_upgraded(checkpoint: Path) -> None:
    original = load_checkpoint(checkpoint)
    make_legacy(checkpoint)
    with pytest.warns(LegacyCheckpointWarning, match=r"written before checksums .* policy\.checkpoint upgrade"):
        legacy = load_checkpoint(checkpoint)
    assert legacy.metadata["format_version"] == 1
    created = legacy.metadata["created"]

    upgrade_checkpoint(checkpoint)
    assert (checkpoint / "manifest.json").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified checkpoint loads without a warning
        upgraded = load_checkpoint(checkpoint)
    assert upgraded.metadata["format_version"] == 2
    assert upgraded.metadata["created"] == created and upgraded.metadata["step"] == 7
    assert upgraded.config == {"lr": 3e-4}
    for key, value in original.model.state_dict().items():
        assert torch.equal(value, upgraded.model.state_dict()[key]), key


def test_legacy_checkpoint_with_a_planted_pickle_is_refused(checkpoint: Path) -> None:
    make_legacy(checkpoint)
    plant_pickle(checkpoint)
    with pytest.warns(LegacyCheckpointWarning), pytest.raises(CheckpointError, match="looks like a pickle"):
        load_checkpoint(checkpoint)


def test_command_line_check_and_upgrade(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_legacy(checkpoint)
    assert main(["upgrade", str(checkpoint)]) == 0
    assert "loads (format version 2); cameras front 32x32, wrist 32x32" in capsys.readouterr().out
    truncate_weights(checkpoint)
    assert main(["check", str(checkpoint)]) == 2
    error = capsys.readouterr().err
    assert "model.safetensors is" in error and "cut short" in error and "Traceback" not in error
