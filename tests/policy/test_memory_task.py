"""The synthetic memory task, trained on the CPU: `make test-slow` and `make demo-memory`
(three models of 600 steps each: minutes on a quiet machine, far more on a busy one, so
not in `make test`).

A cue at the start decides the action many steps later. The DF policy must
remember it; the memoryless variant cannot; with 30% of frames corrupted, DF
(told k = K for those frames) keeps its accuracy while teacher forcing, which
must take them as truth, loses clearly more.
"""

import pytest

from policy.runner import RunnerConfig
from policy.synthetic_memory import VARIANTS, MemoryTask, evaluate, small_model_config, train

TASK = MemoryTask()
EPISODES = 150
CORRUPTION = 0.3
# Few denoising steps keep evaluation quick; the schedule is chosen at run time.
EVAL_RUNNER = RunnerConfig(schedule="autoregressive", horizon=1, steps=5, carry=False)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    return {
        name: train(TASK, small_model_config(**overrides), steps=600, seed=0) for name, overrides in VARIANTS.items()
    }


def accuracy(result, corruption=0.0):
    return evaluate(result, TASK, EPISODES, corruption_prob=corruption, runner_config=EVAL_RUNNER)


def test_df_policy_learns_the_memory_task(trained):
    # How long the training takes is a benchmark figure (`make demo-memory` prints it),
    # not a test: CPU time swells with OpenMP spin-waits when other jobs share the cores.
    assert accuracy(trained["diffusion_forcing"]) >= 0.95


def test_memoryless_variant_stays_near_chance(trained):
    chance = 1 / TASK.num_classes
    assert accuracy(trained["memoryless"]) <= chance + 0.15


def test_marking_corrupted_frames_keeps_df_accurate_while_teacher_forcing_suffers(trained):
    df_clean = accuracy(trained["diffusion_forcing"])
    df_corrupted = accuracy(trained["diffusion_forcing"], CORRUPTION)
    tf_clean = accuracy(trained["teacher_forcing"])
    tf_corrupted = accuracy(trained["teacher_forcing"], CORRUPTION)
    assert df_corrupted >= df_clean - 0.05, (df_clean, df_corrupted)
    assert tf_clean >= 0.9, "teacher forcing should solve the clean task (else the comparison is unfair)"
    assert (tf_clean - tf_corrupted) >= (df_clean - df_corrupted) + 0.10, (
        tf_clean,
        tf_corrupted,
        df_clean,
        df_corrupted,
    )
