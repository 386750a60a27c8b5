import numpy as np
import pytest

from policy.frame_health import CameraHealthMonitor, FrameIssue, HealthConfig

K = 100


def scene(rng, size=64):
    """A textured frame with edges, like a camera view of a table."""
    frame = np.full((size, size, 3), 90, np.uint8)
    frame[10:30, 12:40] = (200, 40, 40)
    frame[35:55, 30:60] = (230, 140, 20)
    noise = rng.integers(-12, 13, frame.shape)
    return np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def warmed():
    """A monitor that has seen enough healthy frames to know this camera's sharpness."""
    rng = np.random.default_rng(0)
    monitor = CameraHealthMonitor(K)
    for i in range(12):
        health = monitor.assess(scene(rng), stamp=i * 0.1, now=i * 0.1 + 0.02)
        assert health.level == 0 and health.issues == (), health
    return monitor, rng


def test_healthy_frames_are_trusted(warmed):
    monitor, rng = warmed
    health = monitor.assess(scene(rng), stamp=5.0, now=5.03)
    assert health.level == 0 and health.usable


@pytest.mark.parametrize(
    ("make", "issue"),
    [
        (lambda rng: np.zeros((64, 64, 3), np.uint8), FrameIssue.BLACK),
        (lambda rng: np.full((64, 64, 3), 255, np.uint8), FrameIssue.SATURATED),
        (lambda rng: np.full((64, 64, 3), 3, np.uint8), FrameIssue.BLACK),
    ],
)
def test_black_and_saturated_frames_are_unusable(warmed, make, issue):
    monitor, rng = warmed
    health = monitor.assess(make(rng), stamp=5.0, now=5.02)
    assert issue in health.issues and health.level == K


def test_missing_and_undecodable_frames_are_unusable(warmed):
    monitor, rng = warmed
    assert monitor.assess(None, None, now=1.0).issues == (FrameIssue.MISSING,)
    assert monitor.assess(scene(rng), 1.0, 1.0, decode_error=True).level == K
    assert FrameIssue.DECODE_ERROR in monitor.assess(np.zeros((4, 4, 3), np.float32), 1.0, 1.0).issues


def test_stale_frames_lose_trust_with_age(warmed):
    monitor, rng = warmed
    config = HealthConfig()
    slightly = monitor.assess(scene(rng), stamp=5.0, now=5.0 + (config.fresh_age_s + config.stale_age_s) / 2)
    assert FrameIssue.STALE in slightly.issues and 0 < slightly.level < K
    very = monitor.assess(scene(rng), stamp=5.0, now=5.0 + config.stale_age_s + 0.5)
    assert FrameIssue.STALE in very.issues and very.level == K


def test_a_frozen_camera_repeating_its_frame_is_flagged(warmed):
    monitor, rng = warmed
    frame = scene(rng)
    assert monitor.assess(frame, 5.0, 5.02).level == 0
    repeated = monitor.assess(frame.copy(), 5.1, 5.12)
    assert FrameIssue.FROZEN in repeated.issues and repeated.level == K


def test_heavy_blur_is_flagged_relative_to_the_cameras_own_sharpness(warmed):
    monitor, rng = warmed
    frame = scene(rng).astype(float)
    for _ in range(6):  # a wide box blur
        frame = (
            frame + np.roll(frame, 1, 0) + np.roll(frame, -1, 0) + np.roll(frame, 1, 1) + np.roll(frame, -1, 1)
        ) / 5
    health = monitor.assess(frame.astype(np.uint8), 5.0, 5.02)
    assert FrameIssue.BLURRED in health.issues and 0 < health.level < K


def test_surprise_against_the_predicted_frame_raises_the_level(warmed):
    monitor, rng = warmed
    frame = scene(rng)
    small = frame.reshape(8, 8, 8, 8, 3).mean(axis=(1, 3)).astype(np.uint8)  # what a good model predicts
    assert monitor.assess(frame, 5.0, 5.02, predicted=small).level == 0
    other = scene(rng)
    other[:, :32] = (20, 200, 20)  # half the view changed: a hand or a distractor
    health = monitor.assess(other, 5.1, 5.12, predicted=small)
    assert FrameIssue.SURPRISE in health.issues and health.level > 0


def test_heavy_pixel_noise_is_flagged(warmed):
    monitor, rng = warmed
    noisy = np.clip(scene(rng).astype(int) + rng.normal(0, 60, (64, 64, 3)), 0, 255).astype(np.uint8)
    health = monitor.assess(noisy, 5.0, 5.02)
    assert FrameIssue.NOISY in health.issues and 0 < health.level < K


def test_sharpness_of_uint8_frames_is_the_exact_laplacian_variance_of_the_grey_image():
    from policy.frame_health import sharpness

    def reference(frame):
        grey = frame.astype(np.float64).mean(axis=2) if frame.ndim == 3 else frame.astype(np.float64)
        lap = -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
        return float(lap.var())

    rng = np.random.default_rng(0)
    frames = [scene(rng), rng.integers(0, 256, (48, 40, 1), dtype=np.uint8), rng.integers(0, 256, (9, 7), np.uint8)]
    frames += [np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 4), 255, np.uint8), np.zeros((2, 9, 3), np.uint8)]
    for frame in frames:
        assert sharpness(frame) == pytest.approx(reference(frame) if min(frame.shape[:2]) >= 3 else 0.0, rel=1e-9)
    noisy = scene(rng).astype(np.float32)
    assert sharpness(noisy) == pytest.approx(reference(noisy), rel=1e-5)  # other dtypes: the float path
