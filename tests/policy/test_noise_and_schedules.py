import numpy as np
import pytest
import torch

from policy.noise import NoiseSchedule
from policy.schedules import next_row_targets, scheduling_matrix


def test_cosine_schedule_runs_from_clean_to_exactly_no_signal():
    schedule = NoiseSchedule(100)
    assert schedule.alpha_bar[0] == pytest.approx(1.0)
    assert schedule.alpha_bar[-1] == 0.0
    assert torch.all(schedule.alpha_bar[1:] <= schedule.alpha_bar[:-1])


def test_level_k_noising_forgets_the_signal_and_level_0_keeps_it():
    schedule = NoiseSchedule(50)
    x0_a, x0_b = torch.zeros(4, 3), torch.ones(4, 3)
    noise = torch.randn(4, 3)
    top = torch.full((4,), 50)
    assert torch.equal(schedule.add_noise(x0_a, top, noise), schedule.add_noise(x0_b, top, noise))
    assert torch.equal(schedule.add_noise(x0_b, torch.zeros(4, dtype=torch.long), noise), x0_b)


@pytest.mark.parametrize("kind", ["x0", "v"])
def test_prediction_target_converts_back_to_x0(kind):
    schedule = NoiseSchedule(100)
    x0, noise = torch.randn(8, 5), torch.randn(8, 5)
    levels = torch.randint(0, 100, (8,))
    noisy = schedule.add_noise(x0, levels, noise)
    target = schedule.target(kind, x0, noise, levels)
    assert torch.allclose(schedule.to_x0(kind, target, noisy, levels), x0, atol=1e-5)


def test_ddim_with_the_true_x0_lands_on_the_forward_process():
    schedule = NoiseSchedule(100)
    x0, noise = torch.randn(6, 4).clamp(-1, 1), torch.randn(6, 4)
    levels, next_levels = torch.full((6,), 80), torch.tensor([60, 40, 20, 0, 80, 79])
    stepped = schedule.ddim_step(schedule.add_noise(x0, levels, noise), x0, levels, next_levels)
    assert torch.allclose(stepped, schedule.add_noise(x0, next_levels, noise), atol=1e-5)
    with pytest.raises(ValueError, match="cannot add noise"):
        schedule.ddim_step(x0, x0, next_levels, levels)


@pytest.mark.parametrize("kind", ["autoregressive", "pyramid", "full_sequence"])
@pytest.mark.parametrize(("horizon", "steps"), [(1, 5), (4, 8), (3, 25)])
def test_scheduling_matrices_start_noisy_end_clean_and_never_add_noise(kind, horizon, steps):
    m = scheduling_matrix(kind, horizon, steps, 1000, uncertainty_scale=2.0)
    assert m.shape[1] == horizon
    assert np.all(m[0] == 1000)
    assert np.all(m[-1] == 0)
    assert np.all(np.diff(m, axis=0) <= 0), "a column gained noise going down the rows"
    assert np.all(np.diff(m, axis=1) >= 0), "a farther token is cleaner than a nearer one"


def test_pyramid_keeps_the_far_future_noisier_and_full_sequence_does_not():
    pyramid = scheduling_matrix("pyramid", 4, 10, 1000, uncertainty_scale=2.0)
    middle = pyramid[6]
    assert middle[0] < middle[1] < middle[2] < middle[3]
    full = scheduling_matrix("full_sequence", 4, 10, 1000)
    assert np.all(full == full[:, :1])
    autoregressive = scheduling_matrix("autoregressive", 3, 10, 1000)
    # token 1 only starts once token 0 is clean
    first_clean_row = int(np.argmax(autoregressive[:, 0] == 0))
    assert np.all(autoregressive[:first_clean_row, 1] == 1000)


def test_schedule_rejects_bad_arguments_by_name():
    with pytest.raises(ValueError, match="horizon"):
        scheduling_matrix("pyramid", 0, 10, 100)
    with pytest.raises(ValueError, match="steps"):
        scheduling_matrix("pyramid", 2, 200, 100)
    with pytest.raises(ValueError, match="unknown schedule"):
        scheduling_matrix("zigzag", 2, 10, 100)  # type: ignore[arg-type]


def test_carried_tokens_join_the_matrix_where_it_reaches_them():
    m = scheduling_matrix("pyramid", 3, 8, 1000, uncertainty_scale=2.0)
    fresh = next_row_targets(m, np.full(3, 1000))
    assert len(fresh) == 8 and fresh[-1][0] == 0
    # After one tick the remaining tokens are partly denoised: far fewer rows are needed.
    carried = np.concatenate([fresh[-1][1:], [1000]])
    again = next_row_targets(m, carried)
    assert 0 < len(again) < len(fresh)
    assert again[-1][0] == 0
    for before, after in zip([carried, *again], again, strict=False):
        assert np.all(after <= before)
