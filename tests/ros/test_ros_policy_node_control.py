"""policy_node's control of its own episode and failures, without a simulator: ~/reset
during a tick never installs the old episode's chunk (provoked deterministically), a
tick that fails every time shows in /diagnostics, and parameter files apply under any
node name and namespace."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from df_policy.policy_node import PolicyNode  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from policy.checkpoint import save_checkpoint  # noqa: E402
from policy.model import DFPolicyModel, ModelConfig  # noqa: E402
from policy.normalizer import Normalizer  # noqa: E402
from training.config import task_policy_spec  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "df_policy"
TINY = ModelConfig(latent_dim=16, embed_dim=16, encoder_channels=(8,), frame_prediction_size=8, num_levels=20)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    spec = task_policy_spec(["task.image_size=16"])
    low = np.array([0.3, -0.25, 0.02, 1, 0, 0, 0, -1, 0, 0.0])
    high = np.array([0.6, 0.25, 0.30, 1, 0, 0, 0, -1, 0, 0.08])
    model = DFPolicyModel(spec, TINY)
    normalizer = Normalizer(low, high, low.copy(), high.copy())
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "untrained", model, normalizer)


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def timer_node(context, checkpoint: Path) -> PolicyNode:
    """A node that ticks on a 20 ms timer (no cameras needed: missing frames are k = K)."""
    return PolicyNode(
        parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("tick_trigger", value="timer"),
            Parameter("policy_rate_hz", value=50.0),
        ],
        context=context,
    )


def test_a_reset_during_a_tick_never_installs_the_old_episodes_chunk(context, checkpoint: Path) -> None:
    node = timer_node(context, checkpoint)
    events: list[str] = []
    in_tick, release = threading.Event(), threading.Event()
    tick, reset = node.agent.tick, node.agent.reset

    def blocking_tick(*args, **kwargs):
        events.append("tick")
        if len(events) == 1:  # hold the first tick between its two critical sections
            in_tick.set()
            assert release.wait(10.0)
        return tick(*args, **kwargs)

    def recorded_reset(*args, **kwargs):
        events.append("reset")
        return reset(*args, **kwargs)

    node.agent.tick, node.agent.reset = blocking_tick, recorded_reset
    try:
        node.start()
        assert in_tick.wait(10.0)
        node.reset_episode()  # what ~/reset does, while the tick computes from the old latent
        assert node.commander.counters.chunks == 0
        release.set()
        deadline = threading.Event()
        for _ in range(500):
            if node.commander.counters.chunks >= 1:
                break
            deadline.wait(0.01)
        assert node.discarded_chunks == 1
        assert node.commander.counters.chunks >= 1  # later ticks install their chunks
        # The agent was reset after the held tick and before any later one.
        assert events[:3] == ["tick", "reset", "tick"], events
    finally:
        release.set()
        node.stop()
        node.destroy_node()


def test_a_tick_that_fails_every_time_is_an_error_in_diagnostics(context, checkpoint: Path) -> None:
    node = timer_node(context, checkpoint)

    def broken_tick(*args, **kwargs):
        raise RuntimeError("the model produced garbage")

    node.agent.tick = broken_tick
    try:
        node.start()
        for _ in range(500):
            if node.consecutive_tick_failures >= 3:
                break
            threading.Event().wait(0.01)
        loop = node.diagnostics().status[0]
        values = {kv.key: kv.value for kv in loop.values}
        assert loop.level == DiagnosticStatus.ERROR
        assert "ticks in a row failed" in loop.message and "the model produced garbage" in loop.message
        assert int(values["tick_failures"]) >= 3 and "garbage" in values["last_tick_error"]
    finally:
        node.stop()
        node.destroy_node()


def test_the_packaged_parameter_files_apply_under_any_name_and_namespace(
    context, checkpoint: Path, tmp_path: Path
) -> None:
    for config in sorted((PACKAGE / "config").glob("*.yaml")):
        assert list(yaml.safe_load(config.read_text())) == ["/**"], f"{config.name} is keyed by a node name"
    data = yaml.safe_load((PACKAGE / "config" / "policy_node.yaml").read_text())
    data["/**"]["ros__parameters"].update({"checkpoint": str(checkpoint), "diagnostics_rate_hz": 7.0})
    params = tmp_path / "policy_node.yaml"
    params.write_text(yaml.safe_dump(data))
    node = PolicyNode(
        "arm_policy", namespace="robot1", cli_args=["--ros-args", "--params-file", str(params)], context=context
    )
    try:
        assert node.get_fully_qualified_name() == "/robot1/arm_policy"
        assert node.settings.diagnostics_rate_hz == 7.0 and node.settings.checkpoint == str(checkpoint)
        topics = {name for name, _ in node.get_publisher_names_and_types_by_node("arm_policy", "/robot1")}
        assert "/robot1/target_pose" in topics  # the description's relative topics follow the namespace
    finally:
        node.destroy_node()
