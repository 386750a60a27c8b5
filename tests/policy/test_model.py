import pytest
import torch

from policy.model import DFPolicyModel, ModelConfig
from policy.objective import ObjectiveConfig, TokenBatch, diffusion_forcing_loss, roll_latents
from training.config import task_policy_spec

SPEC = task_policy_spec(["task.image_size=32"])
ACTION_WIDTH = SPEC.actions_per_token * SPEC.action.dim  # one token's action chunk, flattened
SMALL = {"latent_dim": 48, "embed_dim": 48, "encoder_channels": (8, 16), "frame_prediction_size": 8, "num_levels": 100}


def make_batch(batch=2, length=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TokenBatch(
        frames=torch.rand(batch, length, len(SPEC.cameras), 3, 32, 32, generator=g) * 2 - 1,
        proprio=torch.randn(batch, length, SPEC.proprio_dim, generator=g),
        actions=torch.randn(batch, length, ACTION_WIDTH, generator=g),
        valid=torch.ones(batch, length, dtype=torch.bool),
    )


def token_embeddings(model, batch, levels_seed=0):
    g = torch.Generator().manual_seed(levels_seed)
    B, T = batch.valid.shape
    K = model.config.num_levels
    frame_levels = torch.randint(0, K + 1, (B * T, 2), generator=g)
    other = torch.randint(0, K + 1, (B * T,), generator=g)
    return model.embed_token(
        batch.frames.flatten(0, 1), frame_levels, batch.proprio.flatten(0, 1), other, batch.actions.flatten(0, 1), other
    ).view(B, T, -1)


@pytest.mark.parametrize("variant", [{}, {"memory": "memoryless", "memory_window": 2}, {"context": "teacher_forcing"}])
def test_changing_later_tokens_leaves_earlier_latents_unchanged(variant):
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, ModelConfig(**SMALL, **variant)).eval()
    batch = make_batch()
    embeddings = token_embeddings(model, batch)
    altered = embeddings.clone()
    altered[:, 4:] += torch.randn_like(altered[:, 4:])
    context = embeddings if variant.get("context") else None
    altered_context = altered if variant.get("context") else None
    with torch.no_grad():
        before = roll_latents(model, embeddings, context)
        after = roll_latents(model, altered, altered_context)
    assert torch.equal(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:]), "later tokens must matter (else the test proves nothing)"


def test_memoryless_latent_forgets_tokens_beyond_its_window():
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, ModelConfig(**SMALL, memory="memoryless", memory_window=1)).eval()
    embeddings = token_embeddings(model, make_batch())
    altered = embeddings.clone()
    altered[:, 0] += 5.0
    with torch.no_grad():
        before, after = roll_latents(model, embeddings), roll_latents(model, altered)
    assert not torch.allclose(before[:, 1], after[:, 1])  # token 0 is inside token 1's window
    assert torch.equal(before[:, 2:], after[:, 2:])  # ...and outside every later one


def test_fully_noised_observation_cannot_move_the_latent():
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, ModelConfig(**SMALL)).eval()
    K = model.config.num_levels
    frames_a = torch.rand(3, 2, 3, 32, 32) * 2 - 1
    frames_b = torch.rand(3, 2, 3, 32, 32) * 2 - 1
    proprio_a, proprio_b = torch.randn(3, 10), torch.randn(3, 10)
    actions, action_levels = torch.randn(3, ACTION_WIDTH), torch.zeros(3, dtype=torch.long)
    latent = torch.randn(3, 48)

    def update(frames, proprio, frame_level, proprio_level):
        token = model.embed_token(
            frames, torch.full((3, 2), frame_level), proprio, torch.full((3,), proprio_level), actions, action_levels
        )
        return model.transition(latent, token)

    with torch.no_grad():
        assert torch.equal(update(frames_a, proprio_a, K, K), update(frames_b, proprio_b, K, K))
        assert not torch.allclose(update(frames_a, proprio_a, 0, 0), update(frames_b, proprio_b, 0, 0))
        assert not torch.allclose(update(frames_a, proprio_a, K - 1, 0), update(frames_b, proprio_a, K - 1, 0))


@pytest.mark.parametrize("variant", [{}, {"memory": "memoryless"}, {"context": "teacher_forcing"}, {"prediction": "v"}])
def test_loss_is_finite_differentiable_and_ignores_padding(variant):
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, ModelConfig(**SMALL, **variant))
    batch = make_batch(length=6)
    batch.valid[:, 4:] = False
    loss, metrics = diffusion_forcing_loss(model, batch, ObjectiveConfig(), torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and metrics["action_loss"] > 0
    assert all(p.grad is not None for p in model.cell.parameters())
    # Garbage in the padded tokens must not change the loss.
    garbage = TokenBatch(batch.frames.clone(), batch.proprio.clone(), batch.actions.clone(), batch.valid)
    garbage.actions[:, 4:] = 1e3
    garbage.proprio[:, 4:] = -1e3
    again, _ = diffusion_forcing_loss(model, garbage, ObjectiveConfig(), torch.Generator().manual_seed(1))
    assert torch.allclose(loss, again)


def test_model_config_rejects_unknown_variants_by_name():
    with pytest.raises(ValueError, match="memory"):
        ModelConfig(memory="lstm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"latent_dims": 3})


def test_fixed_observation_fuser_equals_the_full_fuse():
    torch.manual_seed(0)
    model = DFPolicyModel(SPEC, ModelConfig(**SMALL)).eval()
    K = model.config.num_levels
    with torch.no_grad():
        parts = model.observation_parts(
            torch.zeros(1, 2, 3, 32, 32), torch.full((1, 2), K), torch.zeros(1, 10), torch.full((1,), K)
        )
        action = model.action_part(torch.randn(5, ACTION_WIDTH), torch.randint(0, K, (5,)))
        expected = model.fuse_token([p.expand(5, -1) for p in parts], action)
        assert torch.allclose(model.fuser_for_fixed_observation(parts)(action), expected, atol=1e-5)
