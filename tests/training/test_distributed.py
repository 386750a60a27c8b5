"""torchrun with two gloo processes on the CPU, loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from policy.agent import CameraInput, PolicyAgent
from policy.checkpoint import load_checkpoint
from policy.runner import PolicyRunner

from .helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_process_gloo_run_writes_a_checkpoint_the_runtime_loads(tiny_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    port = _free_loopback_port()
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        # gloo picks a network interface from the host name unless told: keep it on loopback.
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "training.train",
        *tiny_overrides(tiny_store, run, **{"optim.total_steps": 4, "optim.batch_size": 1, "device": "cpu"}),
    ]
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    loaded = load_checkpoint(run / "checkpoints" / "latest")
    assert loaded.metadata["world_size"] == 2 and loaded.metadata["training_step"] == 4
    agent = PolicyAgent(PolicyRunner(loaded.model, loaded.normalizer))
    frame = np.full((16, 16, 3), 90, np.uint8)
    tick = agent.tick(0.0, {"front": CameraInput(frame, 0.0), "wrist": CameraInput(frame, 0.0)}, np.zeros(10), 0.0)
    assert tick.chunk.actions.shape[1] == 10 and np.all(np.isfinite(tick.chunk.actions))
