"""Frame health on the simulator's cameras: silent on clean episodes, loud on faults.

`hand` and `occlusion` patches leave a frame's statistics plausible; they are only
caught by surprise against the model's predicted frame, which needs a trained model.
"""

import pytest

from policy.frame_health import CameraHealthMonitor
from sim.env import EnvConfig
from sim.faults import FaultEvent, FaultPlan
from sim.tasks.swap_fruit import ScriptedExpert, SwapFruitEnv

pytestmark = pytest.mark.sim


def run(plan, seed, steps=None):
    env = SwapFruitEnv(EnvConfig(image_size=96))
    env.reset(seed=seed, fault_plan=plan)
    expert = ScriptedExpert(env)
    expert.reset()
    monitors = {c: CameraHealthMonitor(1000) for c in ("front", "wrist")}
    records = []
    step = 0
    while not expert.done and (steps is None or step < steps):
        obs = env.step(expert.act())
        step += 1
        for camera, monitor in monitors.items():
            image = obs.images[camera]
            stamp = obs.image_stamps[camera] if image is not None else None
            records.append((camera, bool(obs.faults.get(camera)), monitor.assess(image, stamp, obs.time)))
    env.close()
    return records


def test_clean_expert_episode_raises_no_false_alarm():
    records = run(None, seed=3)
    alarms = [(camera, health.issues) for camera, _, health in records if health.level > 0]
    assert len(records) > 200 and alarms == []


@pytest.mark.parametrize("kind", ["blackout", "frozen", "dropped", "delayed", "noise", "blur"])
def test_detectable_faults_are_flagged_inside_their_span(kind):
    # Faults start after 1.5 s: blur and noise are judged against the sharpness of the
    # camera's first ten healthy frames (one second at 10 Hz).
    records = run(FaultPlan((FaultEvent(kind, 1.5, 2.5, camera="front"),)), seed=5, steps=35)
    inside = [health.level > 0 for camera, faulty, health in records if camera == "front" and faulty]
    outside = [health.level > 0 for camera, faulty, health in records if camera == "front" and not faulty]
    # A frozen span's first frame is a genuinely new one; every later frame repeats it.
    assert sum(inside) >= len(inside) - (1 if kind == "frozen" else 0) and len(inside) >= 9
    assert not any(outside)
