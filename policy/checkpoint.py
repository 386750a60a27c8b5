"""Checkpoint directories: config.yaml, model.safetensors, normalizer.safetensors,
metadata.json, and manifest.json (SHA-256 and size of each of the other four).

Loading reads YAML with the safe loader, JSON and safetensors only: it never
unpickles code, so a checkpoint from elsewhere cannot run anything. Each file is
read once, checked against the manifest, and parsed from those same bytes, so what
was verified is what runs. Weights and normaliser ranges must be finite. The spec
stored in it is compared with the caller's, and every mismatch is named. Every way
a checkpoint can be unusable is a CheckpointError naming the file and the cause.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from policy.config_io import dataclass_from_dict
from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer
from policy.runner import RunnerConfig
from policy.spec import PolicySpec

FORMAT_NAME = "df-stack-checkpoint"
# Version 2 added manifest.json. Version 1 (no manifest) is still read: see _LEGACY_VERSION.
FORMAT_VERSION = 2
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
NORMALIZER_FILE = "normalizer.safetensors"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "df-stack-checkpoint-manifest"
CHECKSUM_ALGORITHM = "sha256"
CONTENT_FILES = (CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE, METADATA_FILE)

# Checkpoints written before the manifest (format version 1) are loaded, with a
# LegacyCheckpointWarning, rather than refused. Why: they were written by this project's
# own trainer (every run so far, and `make demo`'s cached one); everything else is still
# checked (safetensors only, no pickles, exact file set, shapes, finite values, spec), so
# all that is missing is the detection of a silent change that still parses. Refusing
# would force a retrain for no safety gain; `python -m policy.checkpoint upgrade DIR`
# adds the manifest in place. A version-2 checkpoint without its manifest is refused:
# the manifest was deleted, not never written.
_LEGACY_VERSION = 1

# First bytes of the files people mistake for weights: a pickle (protocol 2+) and the zip
# that torch.save writes. Named in the error so nobody "fixes" it by unpickling.
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, malformed or does not fit the caller."""


class LegacyCheckpointWarning(UserWarning):
    """A checkpoint written before manifests existed was loaded without a checksum check."""


def code_version() -> str:
    try:
        from importlib.metadata import version

        return version("df-stack")
    except Exception:  # not installed as a distribution (e.g. a bare checkout on the robot)
        return "unknown"


@dataclass
class LoadedCheckpoint:
    model: DFPolicyModel
    normalizer: Normalizer
    spec: PolicySpec
    model_config: ModelConfig
    config: dict[str, Any]
    metadata: dict[str, Any]

    def runner_config(self) -> RunnerConfig:
        """The runner settings the policy was evaluated with in training (the training
        config's evaluation.runner), the defaults a robot runs it with; RunnerConfig's
        own defaults for a checkpoint that records none."""
        settings = (self.config.get("evaluation") or {}).get("runner") or {}
        try:
            return dataclass_from_dict(RunnerConfig, dict(settings), "runner settings")
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint's evaluation.runner settings are invalid: {error}") from error


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: DFPolicyModel,
    normalizer: Normalizer,
    config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (a reader never sees half of one).

    `config` is the resolved training configuration (anything YAML can hold);
    `metadata` adds facts such as the dataset hash or training step.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        resolved = {"spec": spec.to_dict(), "model": model.config.to_dict(), "training": config or {}}
        (staging / CONFIG_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        save_file(normalizer.to_tensors(), str(staging / NORMALIZER_FILE))
        meta = {
            "cameras": [
                {"name": c.name, "height": c.height, "width": c.width, "crop": list(c.crop) if c.crop else None}
                for c in spec.cameras
            ],
            "embodiment": spec.embodiment,
            "action_spec": spec.action.describe(),
            "actions_per_token": spec.actions_per_token,
            "token_period_s": spec.token_period_s,
            "action_rate_hz": 1.0 / spec.action_period_s,
            "code_version": code_version(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "parameters": model.parameter_count(),
            **(metadata or {}),
            # After the caller's facts: the format describes these files, not the caller's wish.
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
        }
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        # Written last, inside the staging directory: the rename below publishes the files
        # and their checksums together, so no reader sees one without the other.
        (staging / MANIFEST_FILE).write_text(json.dumps(_manifest(staging), indent=2, sort_keys=True))
        previous = target.with_name(f".{target.name}.previous")
        if target.exists():
            if previous.exists():
                shutil.rmtree(previous)
            os.rename(target, previous)
        os.rename(staging, target)
        if previous.exists():
            shutil.rmtree(previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _manifest(directory: Path) -> dict[str, Any]:
    files = {}
    for name in CONTENT_FILES:
        data = (directory / name).read_bytes()
        files[name] = {CHECKSUM_ALGORITHM: hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return {"format": MANIFEST_FORMAT, "algorithm": CHECKSUM_ALGORITHM, "files": files}


def load_checkpoint(
    directory: str | os.PathLike[str],
    expected_spec: PolicySpec | None = None,
    device: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Load a checkpoint; with `expected_spec`, refuse one whose cameras, image size,
    action spec or rates differ, naming each difference. Raises CheckpointError, naming
    the file and the cause, for anything that makes the checkpoint unusable."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a directory")
    manifest = _read_manifest(path)
    _check_file_set(path, manifest)
    contents = {name: _read_verified(path, name, manifest) for name in CONTENT_FILES}
    metadata = _parse_json(path, METADATA_FILE, contents[METADATA_FILE])
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a df-stack checkpoint (format {metadata.get('format')!r})")
    version = metadata.get("format_version")
    if version not in (FORMAT_VERSION, _LEGACY_VERSION):
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}, this code reads {_LEGACY_VERSION} and {FORMAT_VERSION}"
        )
    if manifest is None:
        if version != _LEGACY_VERSION:
            raise CheckpointError(
                f"checkpoint {path}: {MANIFEST_FILE} is missing, but {METADATA_FILE} says format version {version}, "
                "which always has one; the checkpoint was altered after it was written. Use another copy."
            )
        warnings.warn(
            f"checkpoint {path} was written before checksums existed (format version {_LEGACY_VERSION}): "
            f"loaded without a checksum check. Add one with `python -m policy.checkpoint upgrade {path}`.",
            LegacyCheckpointWarning,
            stacklevel=2,
        )
    resolved = _parse_config(path, contents[CONFIG_FILE])
    try:
        spec = PolicySpec.from_dict(resolved["spec"])
        model_config = ModelConfig.from_dict(resolved["model"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE}: {error}") from error
    if expected_spec is not None:
        problems = spec.mismatches(expected_spec)
        if problems:
            raise CheckpointError(
                f"checkpoint {path} does not match the robot configuration:\n  - " + "\n  - ".join(problems)
            )
    try:
        model = DFPolicyModel(spec, model_config)
    except (ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(
            f"checkpoint {path}: {CONFIG_FILE} describes a model that cannot be built: {error}"
        ) from error
    state = _parse_tensors(path, WEIGHTS_FILE, contents[WEIGHTS_FILE])
    _check_weights_fit(path, model, state)
    _check_finite(path, WEIGHTS_FILE, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:  # dtypes that cannot be copied; shapes and names were checked above
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} does not load into the model: {error}") from error
    normalizer = _parse_normalizer(path, contents[NORMALIZER_FILE], spec)
    model.to(device).eval()
    return LoadedCheckpoint(model, normalizer, spec, model_config, resolved.get("training") or {}, metadata)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest's per-file entries, or None when there is no manifest file."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.exists():
        return None
    document = _parse_json(path, MANIFEST_FILE, _read_bytes(path, MANIFEST_FILE))
    files = document.get("files")
    if document.get("format") != MANIFEST_FORMAT or document.get("algorithm") != CHECKSUM_ALGORITHM:
        raise CheckpointError(
            f"checkpoint {path}: {MANIFEST_FILE} is not a {MANIFEST_FORMAT} with {CHECKSUM_ALGORITHM} checksums "
            f"(format {document.get('format')!r}, algorithm {document.get('algorithm')!r})"
        )
    if not isinstance(files, dict) or sorted(files) != sorted(CONTENT_FILES):
        listed = sorted(files) if isinstance(files, dict) else files
        raise CheckpointError(f"checkpoint {path}: {MANIFEST_FILE} lists {listed}, expected {sorted(CONTENT_FILES)}")
    for name, entry in files.items():
        valid = (
            isinstance(entry, dict)
            and isinstance(entry.get(CHECKSUM_ALGORITHM), str)
            and isinstance(entry.get("bytes"), int)
        )
        if not valid:
            raise CheckpointError(
                f"checkpoint {path}: {MANIFEST_FILE} entry for {name} must hold '{CHECKSUM_ALGORITHM}' (hex string) "
                f"and 'bytes' (integer), got {entry!r}"
            )
    return files


def _check_file_set(path: Path, manifest: dict[str, Any] | None) -> None:
    """Exactly the checkpoint's files, nothing missing and nothing added (a stray file, e.g.
    a pickle planted next to the weights, is refused rather than ignored)."""
    allowed = {*CONTENT_FILES, MANIFEST_FILE}
    present = set(os.listdir(path))
    missing = [name for name in CONTENT_FILES if name not in present or not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    extra = sorted(present - allowed)
    if extra:
        raise CheckpointError(
            f"checkpoint {path} holds unexpected file(s) {extra}; a checkpoint holds only {sorted(allowed)}. "
            "Remove them (or copy the checkpoint's own files elsewhere)."
        )


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        return (path / name).read_bytes()
    except OSError as error:
        raise CheckpointError(f"checkpoint {path}: {name} cannot be read: {error.strerror or error}") from error


def _read_verified(path: Path, name: str, manifest: dict[str, Any] | None) -> bytes:
    data = _read_bytes(path, name)
    if manifest is None:
        return data
    entry = manifest[name]
    if len(data) != entry["bytes"]:
        change = "cut short" if len(data) < entry["bytes"] else "replaced"
        raise CheckpointError(
            f"checkpoint {path}: {name} is {len(data)} bytes, {MANIFEST_FILE} records {entry['bytes']}: "
            f"the file was {change} after the checkpoint was written.{_pickle_hint(data)}"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry[CHECKSUM_ALGORITHM]:
        raise CheckpointError(
            f"checkpoint {path}: {name} fails its {CHECKSUM_ALGORITHM} checksum (recorded "
            f"{entry[CHECKSUM_ALGORITHM][:16]}..., file has {digest[:16]}...): it changed after the checkpoint was "
            f"written.{_pickle_hint(data)}"
        )
    return data


def _pickle_hint(data: bytes) -> str:
    if data.startswith(_PICKLE_MAGIC):
        return " It looks like a pickle (torch.save) file, which df-stack never loads: it could run code."
    return ""


def _parse_json(path: Path, name: str, data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path}: {name} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise CheckpointError(f"checkpoint {path}: {name} must hold a JSON object, got {type(document).__name__}")
    return document


def _parse_config(path: Path, data: bytes) -> dict[str, Any]:
    try:
        resolved = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} is not valid YAML: {error}") from error
    if not isinstance(resolved, dict) or not {"spec", "model"} <= set(resolved):
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} must hold 'spec' and 'model' sections")
    return resolved


def _parse_tensors(path: Path, name: str, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"checkpoint {path}: {name} is not a valid safetensors file ({error}).{_pickle_hint(data)}"
        ) from error


def _check_weights_fit(path: Path, model: DFPolicyModel, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong_shape = [
        f"{key} {list(state[key].shape)} (model: {list(value.shape)})"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    parts = [f"{what} {names[:5]}" for what, names in (("missing", missing), ("unexpected", unexpected)) if names]
    parts += [f"wrong shape {wrong_shape[:5]}"] if wrong_shape else []
    if parts:
        raise CheckpointError(
            f"checkpoint {path}: {WEIGHTS_FILE} does not fit the model its {CONFIG_FILE} describes ({'; '.join(parts)})"
        )


def _check_finite(path: Path, name: str, tensors: dict[str, torch.Tensor]) -> None:
    bad = []
    for key, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad.append(f"{key} ({count} of {tensor.numel()})")
    if bad:
        raise CheckpointError(
            f"checkpoint {path}: {name} holds NaN or infinite values in {len(bad)} tensor(s): {', '.join(bad[:5])}"
            f"{' ...' if len(bad) > 5 else ''}; the run diverged or the file was altered: use an earlier checkpoint"
        )


def _parse_normalizer(path: Path, data: bytes, spec: PolicySpec) -> Normalizer:
    tensors = _parse_tensors(path, NORMALIZER_FILE, data)
    _check_finite(path, NORMALIZER_FILE, tensors)
    try:
        normalizer = Normalizer.from_tensors(tensors)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path}: {NORMALIZER_FILE}: {error}") from error
    for part, low, high, size in (
        ("action", normalizer.action_low, normalizer.action_high, spec.action.dim),
        ("proprio", normalizer.proprio_low, normalizer.proprio_high, spec.proprio_dim),
    ):
        if low.shape != (size,) or high.shape != (size,):
            raise CheckpointError(
                f"checkpoint {path}: {NORMALIZER_FILE} has {part} ranges of shape {list(low.shape)} and "
                f"{list(high.shape)}, the spec in {CONFIG_FILE} needs [{size}]"
            )
        inverted = np.flatnonzero(low > high)
        if inverted.size:
            raise CheckpointError(
                f"checkpoint {path}: {NORMALIZER_FILE}: {part}_low exceeds {part}_high in dimension(s) "
                f"{inverted.tolist()}"
            )
    return normalizer


def upgrade_checkpoint(directory: str | os.PathLike[str]) -> Path:
    """Re-save a checkpoint written before manifests (format version 1) in the current
    format, after every check a load makes; its config, metadata and weights are kept."""
    path = Path(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyCheckpointWarning)
        loaded = load_checkpoint(path)
    metadata = {k: v for k, v in loaded.metadata.items() if k not in ("format", "format_version")}
    return save_checkpoint(path, loaded.model, loaded.normalizer, loaded.config, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m policy.checkpoint", description="Check or upgrade a df-stack policy checkpoint."
    )
    parser.add_argument("action", choices=("check", "upgrade"), help="check: load it; upgrade: add a manifest")
    parser.add_argument("checkpoint", help="checkpoint directory")
    args = parser.parse_args(argv)
    try:
        if args.action == "upgrade":
            upgrade_checkpoint(args.checkpoint)
        loaded = load_checkpoint(args.checkpoint)
    except CheckpointError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    cameras = ", ".join(f"{c.name} {c.height}x{c.width}" for c in loaded.spec.cameras)
    print(
        f"{args.checkpoint}: loads (format version {loaded.metadata['format_version']}); cameras {cameras}; "
        f"actions [{loaded.spec.action.describe()}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
