"""policy_node on bad input. A damaged checkpoint: the constructor raises PolicyNodeError
naming the file and the cause, and `ros2 run` (main) logs it and exits 2 without a
traceback. Frames that do not decode (0x0, corrupt JPEG): the tick treats the camera as a
decode error (k = K) and ~/debug_image keeps coming."""

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

from df_policy.conversions import image_to_compressed_msg, image_to_msg  # noqa: E402
from df_policy.policy_node import PolicyNode, PolicyNodeError  # noqa: E402
from harness import RosHarness  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from policy.checkpoint import save_checkpoint  # noqa: E402
from policy.model import DFPolicyModel, ModelConfig  # noqa: E402
from policy.normalizer import Normalizer  # noqa: E402
from training.config import task_policy_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ros2_ws" / "src" / "df_policy"


def tiny_checkpoint(path: Path, nan_latent: bool = False) -> Path:
    model = DFPolicyModel(
        task_policy_spec(["task.image_size=16"]),
        ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8,), frame_prediction_size=8, num_levels=50),
    )
    if nan_latent:
        with torch.no_grad():
            model.initial_latent.fill_(float("nan"))
    low = np.array([0.4, -0.05, 0.25, -1, -1, -1, -1, -1, -1, 0.0])
    high = np.array([0.5, 0.05, 0.35, 1, 1, 1, 1, 1, 1, 0.08])
    return save_checkpoint(path, model, Normalizer(low, high, low.copy(), high.copy()))


@pytest.fixture
def diverged_checkpoint(tmp_path: Path) -> Path:
    """Saved normally, so the manifest matches: only the NaN check can refuse it."""
    return tiny_checkpoint(tmp_path / "ckpt", nan_latent=True)


def test_node_refuses_a_checkpoint_with_nan_weights(diverged_checkpoint: Path) -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(PolicyNodeError) as raised:
            PolicyNode(
                parameter_overrides=[
                    Parameter("checkpoint", value=str(diverged_checkpoint)),
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


def test_undecodable_frames_are_decode_errors_and_the_debug_image_keeps_coming(tmp_path: Path) -> None:
    harness = RosHarness()
    node = PolicyNode(
        parameter_overrides=[
            Parameter("checkpoint", value=str(tiny_checkpoint(tmp_path / "ckpt"))),
            Parameter("debug_image_size", value=16),
        ],
        context=harness.context,
    )
    received: list[Image] = []
    harness.probe.create_subscription(Image, f"{node.get_fully_qualified_name()}/debug_image", received.append, 10)
    harness.spin(node)
    try:
        harness.wait_for(lambda: node._debug_pub.get_subscription_count() > 0, 30.0, "the debug image subscriber")
        empty = Image(encoding="rgb8", width=0, height=0, step=0)
        empty.header.stamp = image_to_msg(np.zeros((1, 1, 3), np.uint8), 1.0).header.stamp
        corrupt = image_to_compressed_msg(np.full((16, 16, 3), 128, np.uint8), 1.0, fmt="jpeg")
        corrupt.data = bytes(corrupt.data)[:30]
        node._on_frame("front", empty)
        node._on_frame("wrist", corrupt)
        node._tick()
        health = node._last_health
        assert {camera: health[camera].level for camera in ("front", "wrist")} == {
            "front": node.agent.K,
            "wrist": node.agent.K,
        }
        assert all("decode_error" in {issue.value for issue in health[c].issues} for c in ("front", "wrist"))
        harness.wait_for(lambda: len(received) >= 1, 30.0, "a debug image")
        assert (received[0].height, received[0].width) == (32, 32)  # two cameras, each frame next to its prediction
    finally:
        harness.close()


def test_a_frame_of_another_size_than_the_robot_description_says_is_unusable(tmp_path: Path) -> None:
    """A 4K frame on a 96 px camera's topic (another driver, a wrong profile) is refused by
    its header, before it costs the tick a decode and a half-second resize."""
    harness = RosHarness()
    node = PolicyNode(
        parameter_overrides=[Parameter("checkpoint", value=str(tiny_checkpoint(tmp_path / "ckpt")))],
        context=harness.context,
    )
    try:
        huge = Image(encoding="rgb8", width=3840, height=2160, step=3840 * 3)  # no pixels needed: the header decides
        huge.header.stamp = image_to_msg(np.zeros((1, 1, 3), np.uint8), 1.0).header.stamp
        described = node.robot.camera("wrist")
        fitting = image_to_msg(np.full((described.height, described.width, 3), 90, np.uint8), 1.0)
        node._on_frame("front", huge)
        node._on_frame("wrist", fitting)
        node._tick()
        health = node._last_health
        assert health["front"].level == node.agent.K and "decode_error" in {i.value for i in health["front"].issues}
        assert "decode_error" not in {i.value for i in health["wrist"].issues}
    finally:
        node.destroy_node()
        harness.close()
