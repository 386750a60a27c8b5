"""Checkpoint directories: config.yaml, model.safetensors, normalizer.safetensors,
metadata.json.

Loading reads YAML with the safe loader, JSON and safetensors only: it never
unpickles code, so a checkpoint from elsewhere cannot run anything. The spec
stored in it is compared with the caller's, and every mismatch is named.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer
from policy.spec import PolicySpec

FORMAT_NAME = "df-stack-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
NORMALIZER_FILE = "normalizer.safetensors"
METADATA_FILE = "metadata.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, malformed or does not fit the caller."""


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
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "cameras": [{"name": c.name, "height": c.height, "width": c.width} for c in spec.cameras],
            "action_spec": spec.action.describe(),
            "actions_per_token": spec.actions_per_token,
            "token_period_s": spec.token_period_s,
            "action_rate_hz": 1.0 / spec.action_period_s,
            "code_version": code_version(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "parameters": model.parameter_count(),
            **(metadata or {}),
        }
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
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


def load_checkpoint(
    directory: str | os.PathLike[str],
    expected_spec: PolicySpec | None = None,
    device: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Load a checkpoint; with `expected_spec`, refuse one whose cameras, image size,
    action spec or rates differ, naming each difference."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a directory")
    missing = [
        name for name in (CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE, METADATA_FILE) if not (path / name).is_file()
    ]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
        resolved = yaml.safe_load((path / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise CheckpointError(f"checkpoint {path}: cannot parse its config or metadata: {error}") from error
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a df-stack checkpoint (format {metadata.get('format')!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {metadata.get('format_version')}, this code reads {FORMAT_VERSION}"
        )
    if not isinstance(resolved, dict) or not {"spec", "model"} <= set(resolved):
        raise CheckpointError(f"checkpoint {path}: {CONFIG_FILE} must hold 'spec' and 'model' sections")
    try:
        spec = PolicySpec.from_dict(resolved["spec"])
        model_config = ModelConfig.from_dict(resolved["model"])
    except ValueError as error:
        raise CheckpointError(f"checkpoint {path}: {error}") from error
    if expected_spec is not None:
        problems = spec.mismatches(expected_spec)
        if problems:
            raise CheckpointError(
                f"checkpoint {path} does not match the robot configuration:\n  - " + "\n  - ".join(problems)
            )
    model = DFPolicyModel(spec, model_config)
    state = load_file(str(path / WEIGHTS_FILE))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit the model its config describes "
            f"(missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    normalizer = Normalizer.from_tensors(load_file(str(path / NORMALIZER_FILE)))
    if normalizer.action_low.shape != (spec.action.dim,) or normalizer.proprio_low.shape != (spec.proprio_dim,):
        raise CheckpointError(
            f"checkpoint {path}: normaliser sizes ({normalizer.action_low.shape[0]} actions, "
            f"{normalizer.proprio_low.shape[0]} proprio) do not fit the spec "
            f"({spec.action.dim}, {spec.proprio_dim})"
        )
    model.to(device).eval()
    return LoadedCheckpoint(model, normalizer, spec, model_config, resolved.get("training") or {}, metadata)
