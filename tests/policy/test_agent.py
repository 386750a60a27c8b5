import numpy as np
import torch

from policy.agent import CameraInput, PolicyAgent
from policy.frame_health import FrameIssue
from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer
from policy.runner import PolicyRunner
from training.config import task_policy_spec

SPEC = task_policy_spec(["task.image_size=32"])
SMALL = ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8,), frame_prediction_size=8, num_levels=100)


def make_agent():
    torch.manual_seed(0)
    return PolicyAgent(PolicyRunner(DFPolicyModel(SPEC, SMALL), Normalizer.identity(10, 10)))


def textured(rng):
    return rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)


def test_health_sets_levels_and_the_newest_usable_frame_stamps_the_chunk():
    rng = np.random.default_rng(0)
    agent = make_agent()
    tick = agent.tick(
        now=10.0,
        cameras={
            "front": CameraInput(textured(rng), 9.96),
            "wrist": CameraInput(np.zeros((48, 48, 3), np.uint8), 9.99),
        },
        proprio=np.zeros(10),
        proprio_stamp=9.995,
    )
    assert tick.health["front"].level == 0
    assert FrameIssue.BLACK in tick.health["wrist"].issues
    assert tick.chunk.frame_levels == {"front": 0, "wrist": agent.K}
    assert tick.observation_stamp == 9.96  # the black frame's stamp does not count
    np.testing.assert_allclose(tick.chunk.stamps[:4], 9.96 + 0.1 * np.arange(4))


def test_missing_cameras_and_stale_state_enter_as_unknown():
    rng = np.random.default_rng(0)
    agent = make_agent()
    tick = agent.tick(
        now=5.0, cameras={"front": CameraInput(textured(rng), 4.98)}, proprio=np.zeros(10), proprio_stamp=4.0
    )
    assert FrameIssue.MISSING in tick.health["wrist"].issues
    assert tick.chunk.frame_levels["wrist"] == agent.K
    assert tick.proprio_level == agent.K
    # Reset clears the health monitors' memory: the same frame is not "frozen" in a new episode.
    frame = textured(rng)
    agent.tick(now=6.0, cameras={"front": CameraInput(frame, 6.0)}, proprio=np.zeros(10), proprio_stamp=6.0)
    agent.reset()
    again = agent.tick(now=7.0, cameras={"front": CameraInput(frame, 7.0)}, proprio=np.zeros(10), proprio_stamp=7.0)
    assert FrameIssue.FROZEN not in again.health["front"].issues
