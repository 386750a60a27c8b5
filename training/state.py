"""The resume state of a run: everything needed to continue it bit for bit.

A directory `<run_dir>/resume/`, written atomically (staging + rename) and read without
unpickling anything:

    model.safetensors       trained weights (not the EMA)
    ema.safetensors         EMA weights
    optimizer.safetensors   AdamW moments and step counts, one tensor per parameter
    rng.safetensors         torch CPU (and CUDA) generator states
    normalizer.safetensors  the normaliser fitted at the start of the run
    state.json              step, scheduler, sampler position, optimizer hyper-parameters,
                            numpy/python RNG states, best validation loss, and the
                            configuration sections a resumed run must agree with
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from policy.normalizer import Normalizer

from .config import TrainingConfigError

RESUME_DIR = "resume"
STATE_FILE = "state.json"


@dataclass
class ResumeState:
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    normalizer: Normalizer
    state: dict[str, Any]


def _optimizer_tensors(optimizer_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    tensors: dict[str, torch.Tensor] = {}
    for index, values in optimizer_state["state"].items():
        for name, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{name}"] = tensor.detach().cpu().contiguous()
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in optimizer_state["param_groups"]
    ]
    return tensors, groups


def _optimizer_state(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    param_groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": param_groups}


def rng_states() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{index}"] = state
    np_state = np.random.get_state()
    python_state = random.getstate()
    plain = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [python_state[0], list(python_state[1]), python_state[2]],
    }
    return tensors, plain


def restore_rng(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))


def save_resume_state(
    run_dir: Path,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    normalizer: Normalizer,
    state: dict[str, Any],
) -> Path:
    target = run_dir / RESUME_DIR
    staging = Path(tempfile.mkdtemp(prefix=f".{RESUME_DIR}.", dir=run_dir))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.items()}, str(staging / "model.safetensors"))
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(staging / "ema.safetensors"))
        tensors, groups = _optimizer_tensors(optimizer_state)
        save_file(tensors, str(staging / "optimizer.safetensors"))
        save_file(normalizer.to_tensors(), str(staging / "normalizer.safetensors"))
        rng_tensors, rng_plain = rng_states()
        save_file(rng_tensors, str(staging / "rng.safetensors"))
        document = {**state, "optimizer_param_groups": groups, "rng": rng_plain}
        (staging / STATE_FILE).write_text(json.dumps(document, indent=1))
        previous = run_dir / f".{RESUME_DIR}.previous"
        if target.exists():
            if previous.exists():
                shutil.rmtree(previous)
            os.rename(target, previous)
        os.rename(staging, target)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def find_resume_dir(path: str | Path) -> Path:
    """Accept a run directory or its resume/ folder."""
    path = Path(path)
    for candidate in (path, path / RESUME_DIR):
        if (candidate / STATE_FILE).is_file():
            return candidate
    raise TrainingConfigError(f"cannot resume from {str(path)!r}: no {RESUME_DIR}/{STATE_FILE} there")


def load_resume_state(path: str | Path) -> ResumeState:
    directory = find_resume_dir(path)
    try:
        document = json.loads((directory / STATE_FILE).read_text())
        model = load_file(str(directory / "model.safetensors"))
        ema = load_file(str(directory / "ema.safetensors"))
        optimizer = _optimizer_state(
            load_file(str(directory / "optimizer.safetensors")), document.pop("optimizer_param_groups")
        )
        normalizer = Normalizer.from_tensors(load_file(str(directory / "normalizer.safetensors")))
        document["rng_tensors"] = load_file(str(directory / "rng.safetensors"))
    except (OSError, ValueError, KeyError) as error:
        raise TrainingConfigError(f"resume state in {directory} is unreadable or incomplete: {error}") from error
    return ResumeState(model, ema, optimizer, normalizer, document)
