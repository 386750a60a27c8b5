import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from policy.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from policy.model import DFPolicyModel, ModelConfig
from policy.normalizer import Normalizer
from policy.spec import ActionComponent, ActionSpec, CameraSpec, PolicySpec, SpecMismatchError
from training.config import task_policy_spec

SMALL = ModelConfig(latent_dim=32, embed_dim=32, encoder_channels=(8,), frame_prediction_size=8, num_levels=50)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    spec = task_policy_spec(["task.image_size=32"])
    model = DFPolicyModel(spec, SMALL)
    rng = np.random.default_rng(0)
    normalizer = Normalizer.fit(rng.normal(size=(100, 10)), rng.normal(size=(100, 10)))
    path = save_checkpoint(tmp_path / "ckpt", model, normalizer, config={"lr": 3e-4}, metadata={"dataset_hash": "abc"})
    return path, model, normalizer, spec


def test_round_trip_is_exact(saved):
    path, model, normalizer, spec = saved
    loaded = load_checkpoint(path, expected_spec=spec)
    assert loaded.spec == spec and loaded.model_config == SMALL
    original, restored = model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    for field in ("action_low", "action_high", "proprio_low", "proprio_high"):
        np.testing.assert_array_equal(getattr(normalizer, field), getattr(loaded.normalizer, field))
    assert loaded.config == {"lr": 3e-4}
    assert loaded.metadata["dataset_hash"] == "abc"
    assert loaded.metadata["cameras"][0] == {"name": "front", "height": 32, "width": 32, "crop": None}


def test_checkpoint_holds_no_pickles(saved):
    path = saved[0]
    names = sorted(p.name for p in path.iterdir())
    assert names == ["config.yaml", "manifest.json", "metadata.json", "model.safetensors", "normalizer.safetensors"]
    assert load_file(str(path / "model.safetensors"))  # plain tensors
    json.loads((path / "metadata.json").read_text())


def test_mismatched_checkpoint_is_refused_naming_the_difference(saved):
    path, _, _, spec = saved
    other_cameras = PolicySpec(
        cameras=(CameraSpec("front", 32, 32), CameraSpec("side", 32, 32)),
        proprio_dim=spec.proprio_dim,
        action=spec.action,
        actions_per_token=spec.actions_per_token,
        token_period_s=spec.token_period_s,
    )
    with pytest.raises(CheckpointError, match=r"missing \['wrist'\].*unexpected \['side'\]"):
        load_checkpoint(path, expected_spec=other_cameras)
    with pytest.raises(
        CheckpointError, match="camera 'front': checkpoint expects 32x32x3, configuration gives 64x64x3"
    ):
        bigger_front = (CameraSpec("front", 64, 64), CameraSpec("wrist", 32, 32))
        load_checkpoint(path, expected_spec=PolicySpec(**{**spec.__dict__, "cameras": bigger_front}))
    joint_actions = PolicySpec(
        cameras=spec.cameras,
        proprio_dim=spec.proprio_dim,
        action=ActionSpec((ActionComponent("joints", 7), ActionComponent("gripper", 1))),
        actions_per_token=spec.actions_per_token,
        token_period_s=spec.token_period_s,
    )
    with pytest.raises(
        CheckpointError, match=r"action spec: checkpoint has \[position\[3\], rotation_6d\[6\], gripper\[1\]\]"
    ):
        load_checkpoint(path, expected_spec=joint_actions)


def test_broken_checkpoints_get_clear_errors(saved, tmp_path):
    path = saved[0]
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    (path / "normalizer.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing \['normalizer.safetensors'\]"):
        load_checkpoint(path)


def test_saving_over_an_existing_checkpoint_replaces_it(saved):
    path, model, normalizer, _ = saved
    with torch.no_grad():
        model.initial_latent.fill_(0.5)
    save_checkpoint(path, model, normalizer)
    assert torch.all(load_checkpoint(path).model.initial_latent == 0.5)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_spec_round_trip_and_validation():
    spec = task_policy_spec(["task.image_size=48"])
    assert PolicySpec.from_dict(spec.to_dict()) == spec
    assert spec.action_period_s == pytest.approx(0.1)
    with pytest.raises(SpecMismatchError, match="token period"):
        spec.require_compatible(PolicySpec(**{**spec.__dict__, "token_period_s": 0.5}))
    with pytest.raises(ValueError, match="unique"):
        PolicySpec(**{**spec.__dict__, "cameras": (CameraSpec("a", 32, 32), CameraSpec("a", 32, 32))})
    with pytest.raises(ValueError, match="malformed"):
        PolicySpec.from_dict({"cameras": []})


def test_crops_non_square_images_and_the_embodiment_round_trip_and_are_compared():
    spec = task_policy_spec(["task.image_size=[24,40]", "+task.crops.front=[8,4,80,88]"])
    assert spec.cameras[0] == CameraSpec("front", 24, 40, 3, (8, 4, 80, 88)) and spec.cameras[1].crop is None
    assert PolicySpec.from_dict(spec.to_dict()) == spec and spec.embodiment == "ee_pose"
    uncropped = PolicySpec(**{**spec.__dict__, "cameras": (CameraSpec("front", 24, 40), spec.cameras[1])})
    joint = PolicySpec(**{**spec.__dict__, "embodiment": "joint_position"})
    assert spec.mismatches(uncropped) == ["camera 'front': checkpoint crops (8, 4, 80, 88), configuration crops None"]
    assert spec.mismatches(joint) == ["embodiment: checkpoint 'ee_pose', configuration 'joint_position'"]


def test_a_camera_crops_then_resizes_and_takes_prepared_frames_as_they_are():
    camera = CameraSpec("front", 8, 16, 3, (2, 4, 16, 32))
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[2:18, 4:36] = 200  # exactly the crop: the prepared frame is uniform
    prepared = camera.prepare(frame)
    assert prepared.shape == (8, 16, 3) and np.all(prepared == 200)
    assert camera.prepare(prepared) is prepared
    with pytest.raises(ValueError, match="does not fit a 10x60 frame"):
        camera.prepare(np.zeros((10, 60, 3), np.uint8))
    with pytest.raises(ValueError, match="got shape \\(0, 0, 3\\)"):
        camera.prepare(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match="smaller than the policy image 8x16; it would be upscaled"):
        CameraSpec("front", 8, 16, 3, (0, 0, 4, 16))
