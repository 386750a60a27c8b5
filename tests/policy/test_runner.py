import numpy as np
import pytest
import torch

from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer
from policy.runner import Observation, PolicyRunner, RunnerConfig
from training.config import task_policy_spec

SPEC = task_policy_spec(["task.image_size=32"])
SMALL = {"latent_dim": 48, "embed_dim": 48, "encoder_channels": (8, 16), "frame_prediction_size": 8, "num_levels": 100}


def make_runner(runner_config=None, **model_overrides):
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, ModelConfig(**SMALL, **model_overrides))
    normalizer = Normalizer(
        action_low=np.full(10, -0.5),
        action_high=np.full(10, 0.5),
        proprio_low=np.full(10, -1.0),
        proprio_high=np.ones(10),
    )
    return PolicyRunner(model, normalizer, runner_config)


def observation(t, rng, **overrides):
    values = {
        "stamp": 0.4 * t,  # any times: the chunk is stamped from this one
        "frames": {name: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for name in ("front", "wrist")},
        "proprio": rng.uniform(-1, 1, 10),
    }
    values.update(overrides)
    return Observation(**values)


def test_chunk_is_stamped_from_the_observation_time_in_physical_units():
    runner = make_runner(RunnerConfig(schedule="pyramid", horizon=2, steps=6))
    chunk = runner.step(observation(3, np.random.default_rng(0)))
    assert chunk.actions.shape == (2 * SPEC.actions_per_token, 10)
    assert chunk.clean_actions == SPEC.actions_per_token
    np.testing.assert_allclose(chunk.stamps, 1.2 + SPEC.action_period_s * np.arange(2 * SPEC.actions_per_token))
    assert np.all(chunk.actions >= -0.5 - 1e-9) and np.all(chunk.actions <= 0.5 + 1e-9)
    assert set(chunk.predicted_frames) == {"front", "wrist"}
    assert chunk.predicted_frames["front"].shape == (8, 8, 3) and chunk.predicted_frames["front"].dtype == np.uint8


@pytest.mark.parametrize("memory", ["recurrent", "memoryless"])
def test_per_tick_work_does_not_grow_with_the_episode(memory):
    runner = make_runner(
        RunnerConfig(schedule="pyramid", horizon=3, steps=8, uncertainty_scale=2), memory=memory, memory_window=2
    )
    rng = np.random.default_rng(0)
    evaluations = [runner.step(observation(t, rng)).network_evaluations for t in range(40)]
    assert max(evaluations[5:]) == min(evaluations[5:])
    assert max(evaluations) <= 1 + runner.model.config.memory_window + 3 * 9


def test_carrying_future_tokens_saves_work_per_tick():
    rng = np.random.default_rng(0)
    carried = make_runner(RunnerConfig(schedule="pyramid", horizon=3, steps=8, uncertainty_scale=2, carry=True))
    fresh = make_runner(RunnerConfig(schedule="pyramid", horizon=3, steps=8, uncertainty_scale=2, carry=False))
    with_carry = [carried.step(observation(t, rng)).network_evaluations for t in range(6)]
    without = [fresh.step(observation(t, rng)).network_evaluations for t in range(6)]
    assert with_carry[0] == without[0]
    assert with_carry[-1] < without[-1]


def test_horizon_and_steps_change_at_run_time_without_retraining():
    rng = np.random.default_rng(0)
    model = make_runner().model
    normalizer = Normalizer.identity(10, 10)
    for config in (
        RunnerConfig(schedule="autoregressive", horizon=1, steps=4),
        RunnerConfig(schedule="pyramid", horizon=4, steps=12, uncertainty_scale=1.5),
        RunnerConfig(schedule="full_sequence", horizon=2, steps=3),
    ):
        chunk = PolicyRunner(model, normalizer, config).step(observation(0, rng))
        assert chunk.actions.shape == (config.horizon * SPEC.actions_per_token, 10)
        assert np.all(np.isfinite(chunk.actions))


def test_reset_with_a_seed_reproduces_an_episode():
    runner = make_runner()
    frames = [observation(t, np.random.default_rng(t)) for t in range(5)]
    runner.reset(seed=7)
    first = [runner.step(o).actions for o in frames]
    runner.reset(seed=7)
    second = [runner.step(o).actions for o in frames]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_and_unusable_frames_enter_at_level_k_and_teacher_forcing_trusts_marked_frames():
    rng = np.random.default_rng(0)
    runner = make_runner()
    K = runner.K
    chunk = runner.step(observation(0, rng, frames={"front": None, "wrist": np.zeros((32, 32, 3), np.uint8)}))
    assert chunk.frame_levels == {"front": K, "wrist": 0}
    chunk = runner.step(observation(1, rng, frame_levels={"wrist": 40}))
    assert chunk.frame_levels == {"front": 0, "wrist": 40}
    teacher = make_runner(context="teacher_forcing")
    chunk = teacher.step(observation(0, rng, frame_levels={"wrist": K // 2}))
    assert chunk.frame_levels["wrist"] == 0


def test_an_unusable_frame_does_not_change_the_policys_output():
    rng = np.random.default_rng(0)
    history = [observation(t, rng) for t in range(4)]
    outputs = []
    for garbage in (np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)):
        runner = make_runner()
        runner.reset(seed=1)
        for o in history[:-1]:
            runner.step(o)
        last = history[-1]
        marked = Observation(last.stamp, dict(last.frames, front=garbage), {"front": runner.K}, last.proprio)
        outputs.append(runner.step(marked).actions)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_bad_observations_get_clear_errors():
    rng = np.random.default_rng(0)
    runner = make_runner()
    with pytest.raises(ValueError, match="cameras \\['side'\\]"):
        runner.step(observation(0, rng, frame_levels={"side": 0}))
    with pytest.raises(ValueError, match="proprio has 3 values"):
        runner.step(observation(0, rng, proprio=np.zeros(3)))
    with pytest.raises(ValueError, match="executed_actions has shape"):
        runner.step(observation(0, rng, executed_actions=np.zeros((2, 10))))
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        runner.step(observation(0, rng, frame_levels={"front": 101}))
    with pytest.raises(ValueError, match="HxWx1 or HxWx3"):
        runner.step(observation(0, rng, frames={"front": np.zeros((4, 32, 32, 3), np.uint8), "wrist": None}))


@pytest.mark.parametrize(
    ("model_overrides", "runner_config"),
    [
        ({}, RunnerConfig(schedule="pyramid", horizon=2, steps=8)),
        ({"prediction": "v"}, RunnerConfig(schedule="autoregressive", horizon=3, steps=4)),
        ({"memory": "memoryless", "memory_window": 2}, RunnerConfig(schedule="full_sequence", horizon=1, carry=False)),
        ({"context": "teacher_forcing"}, RunnerConfig(schedule="pyramid", horizon=4, steps=6)),
    ],
)
def test_the_fast_path_computes_what_the_models_own_methods_do(model_overrides, runner_config):
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, ModelConfig(**SMALL, **model_overrides))
    normalizer = Normalizer(np.full(10, -0.5), np.full(10, 0.5), np.full(10, -1.0), np.ones(10))
    fast = PolicyRunner(model, normalizer, runner_config)
    reference = PolicyRunner(model, normalizer, runner_config, fast=False)
    rng = np.random.default_rng(0)
    for t in range(12):
        # Every kind of tick: missing and doubtful frames, no proprioception, executed actions.
        values = {"frame_levels": {"front": [0, 0, 30, 100][t % 4]}}
        if t % 5 == 3:
            values["frames"] = {"front": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "wrist": None}
        if t % 6 == 4:
            values["proprio"] = None
        if t % 4 == 2:
            values["executed_actions"] = rng.uniform(-0.5, 0.5, (SPEC.actions_per_token, 10))
        o = observation(t, rng, **values)
        a, b = fast.step(o), reference.step(o)
        np.testing.assert_allclose(a.actions, b.actions, atol=1e-5)
        assert a.network_evaluations == b.network_evaluations and a.frame_levels == b.frame_levels
        for name in a.predicted_frames:
            assert np.abs(a.predicted_frames[name].astype(int) - b.predicted_frames[name]).max() <= 1
    assert fast.uses_fast_path and not reference.uses_fast_path


def test_the_fast_path_steps_aside_for_a_model_it_does_not_know():
    rng = np.random.default_rng(0)
    other_structure = make_runner()
    other_structure.model.fuse[2] = torch.nn.GELU()
    other_result = make_runner()
    model = other_result.model
    model.transition = lambda latent, token: model.cell(token, latent) * 0.5
    for runner in (other_structure, other_result):
        with pytest.warns(UserWarning, match="fast path unavailable"):
            chunk = runner.step(observation(0, rng))
        assert not runner.uses_fast_path and np.all(np.isfinite(chunk.actions))
