"""policy_node as `ros2 run` starts it: main() in its own process, with the executor its
parameters choose, driven by a small in-test robot (frames, pose) over DDS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros]

rclpy = pytest.importorskip("rclpy")

from df_policy import qos  # noqa: E402
from df_policy.conversions import image_to_msg, pose_to_msg  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from harness import robot_topics  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from policy.checkpoint import save_checkpoint  # noqa: E402
from policy.geometry import matrix_to_quat  # noqa: E402
from policy.model import DFPolicyModel, ModelConfig  # noqa: E402
from policy.normalizer import Normalizer  # noqa: E402
from robots.description import DEFAULT_ROBOT_DESCRIPTION, load_robot_description  # noqa: E402
from training.config import task_policy_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ros2_ws" / "src" / "df_policy"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = DFPolicyModel(
        task_policy_spec(["task.image_size=16"]),
        ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8,), frame_prediction_size=8, num_levels=50),
    )
    low = np.array([0.4, -0.05, 0.25, -1, -1, -1, -1, -1, -1, 0.0])
    high = np.array([0.5, 0.05, 0.35, 1, 1, 1, 1, 1, 1, 0.08])
    return save_checkpoint(
        tmp_path_factory.mktemp("main") / "ckpt", model, Normalizer(low, high, low.copy(), high.copy())
    )


@pytest.mark.parametrize("executor", ["single", "multi"])
def test_main_runs_enables_and_stops_on_sigint(checkpoint: Path, executor: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PACKAGE), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "df_policy.policy_node",
            "--ros-args",
            "-p",
            f"checkpoint:={checkpoint}",
            "-p",
            f"executor:={executor}",
            "-p",
            "policy_rate_hz:=10.0",
            "-p",
            "diagnostics_rate_hz:=5.0",
            "-p",
            "torch_threads:=1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("fake_robot", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    commands: list[PoseStamped] = []
    diagnostics: list[DiagnosticArray] = []
    topics = robot_topics(DEFAULT_ROBOT_DESCRIPTION)  # the node runs with the default description
    node.create_subscription(PoseStamped, topics.command, commands.append, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    images = {c: node.create_publisher(Image, topic, qos.image_qos()) for c, topic in topics.cameras.items()}
    pose = node.create_publisher(PoseStamped, topics.current_pose, qos.robot_state_qos())
    stop = threading.Event()
    rng = np.random.default_rng(0)
    size = load_robot_description(DEFAULT_ROBOT_DESCRIPTION).camera("front").height  # the node's default robot

    def robot() -> None:
        quat = matrix_to_quat(np.diag([1.0, -1.0, -1.0]))
        while not stop.is_set():
            now = node.get_clock().now().nanoseconds * 1e-9
            pose.publish(pose_to_msg([0.45, 0.0, 0.3], quat, now, topics.frame_id))
            for camera, publisher in images.items():
                publisher.publish(image_to_msg(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), now, camera))
            stop.wait(0.02)

    def wait_for(condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
            if condition():
                return
            assert process.poll() is None, f"policy_node exited: {process.communicate()[0]}"
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    thread = threading.Thread(target=robot, daemon=True)
    thread.start()
    try:
        wait_for(lambda: bool(diagnostics), 60.0, "diagnostics from policy_node")
        assert not commands, "commanding must wait for ~/enable"
        client = node.create_client(SetBool, "/policy_node/enable")
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(SetBool.Request(data=True))
        wait_for(future.done, 10.0, "the ~/enable response")
        assert future.result().success
        wait_for(lambda: len(commands) > 10, 10.0, "commands after ~/enable")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
        assert process.returncode == 0, output
        assert "commanding enabled" in output
    finally:
        stop.set()
        thread.join(timeout=2.0)
        if process.poll() is None:
            process.kill()
            process.communicate()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
