"""The synthetic memory task's pieces, in seconds (the trainings that prove DF remembers
and the baselines do not are `slow`: tests/policy/test_memory_task.py, make demo-memory)."""

import numpy as np

from policy.runner import RunnerConfig
from policy.synthetic_memory import MemoryTask, evaluate, make_episode, small_model_config, train

TASK = MemoryTask()


def test_an_episode_shows_its_cue_first_and_asks_for_the_action_after_the_go_frame() -> None:
    episode = make_episode(TASK, np.random.default_rng(0))
    assert episode.frames.shape == (TASK.length, TASK.image_size, TASK.image_size, 3)
    assert not episode.corrupted.any()
    nonzero = np.flatnonzero(np.abs(episode.actions).sum(axis=1))
    assert nonzero.tolist() == [TASK.go_token + 1]
    np.testing.assert_allclose(episode.actions[TASK.go_token + 1], TASK.targets()[episode.cls])
    corrupted = make_episode(TASK, np.random.default_rng(0), corruption_prob=1.0)
    assert corrupted.corrupted.all()


def test_training_is_reproducible_and_evaluation_scores_an_accuracy() -> None:
    first = train(TASK, small_model_config(), steps=3, batch_size=4, seed=0)
    second = train(TASK, small_model_config(), steps=3, batch_size=4, seed=0)
    assert first.losses == second.losses and all(np.isfinite(first.losses))
    runner = RunnerConfig(schedule="autoregressive", horizon=1, steps=2, carry=False)
    accuracy = evaluate(first, TASK, episodes=4, runner_config=runner)
    assert 0.0 <= accuracy <= 1.0
    assert evaluate(first, TASK, episodes=4, runner_config=runner) == accuracy  # seeded episodes
