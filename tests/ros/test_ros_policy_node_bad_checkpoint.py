"""policy_node refuses to start on a damaged checkpoint: the constructor raises
PolicyNodeError naming the file and the cause, and `ros2 run` (main) logs it and exits 2
without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.ros]

rclpy = pytest.importorskip("rclpy")

from df_policy.policy_node import PolicyNode, PolicyNodeError  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from policy.checkpoint import save_checkpoint  # noqa: E402
from policy.model import DFPolicyModel, ModelConfig  # noqa: E402
from policy.normalizer import Normalizer  # noqa: E402
from policy.spec import swap_fruit_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ros2_ws" / "src" / "df_policy"


@pytest.fixture
def diverged_checkpoint(tmp_path: Path) -> Path:
    """Saved normally, so the manifest matches: only the NaN check can refuse it."""
    model = DFPolicyModel(
        swap_fruit_spec(image_size=16),
        ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8,), frame_prediction_size=8, num_levels=50),
    )
    with torch.no_grad():
        model.initial_latent.fill_(float("nan"))
    low = np.array([0.4, -0.05, 0.25, -1, -1, -1, -1, -1, -1, 0.0])
    high = np.array([0.5, 0.05, 0.35, 1, 1, 1, 1, 1, 1, 0.08])
    return save_checkpoint(tmp_path / "ckpt", model, Normalizer(low, high, low.copy(), high.copy()))


def test_node_refuses_a_checkpoint_with_nan_weights(diverged_checkpoint: Path) -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(PolicyNodeError) as raised:
            PolicyNode(
                parameter_overrides=[
                    Parameter("checkpoint", value=str(diverged_checkpoint)),
                    Parameter("image_size", value=16),
                ],
                context=context,
            )
    finally:
        rclpy.shutdown(context=context)
    message = str(raised.value)
    assert message.startswith("refusing to start: checkpoint ")
    assert "model.safetensors holds NaN or infinite values in 1 tensor(s): initial_latent (32 of 32)" in message


def test_node_main_exits_2_on_a_truncated_checkpoint(diverged_checkpoint: Path) -> None:
    weights = diverged_checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PACKAGE), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "df_policy.policy_node",
            "--ros-args",
            "-p",
            f"checkpoint:={diverged_checkpoint}",
            "-p",
            "image_size:=16",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "refusing to start" in output and "model.safetensors is 64 bytes" in output
    assert "Traceback" not in output
