"""The swap-fruit scene: table with three marked slots, an apple, an orange, the FR3
arm, a front and a wrist camera and a (normally hidden) distractor object.

Everything is expressed in the robot base frame fr3_link0, which is also MuJoCo's world
frame: the table top is the plane z = 0 and the arm stands on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.franka import arm_mjcf

FRUITS: tuple[str, ...] = ("apple", "orange")
FRUIT_RADIUS = 0.032  # m; both fit the 80 mm gripper with room to spare
FRUIT_MASS = 0.12  # kg
FRUIT_COLOURS = {"apple": "0.78 0.07 0.09 1", "orange": "1.0 0.5 0.04 1"}

# Slot centres on the table (x, y), left to right as the robot sees them.
SLOT_POSITIONS = np.array([[0.5, 0.16], [0.5, 0.0], [0.5, -0.16]])
SLOT_RADIUS = 0.045

CAMERAS: tuple[str, ...] = ("front", "wrist")
FRONT_CAMERA_POSITION = np.array([0.98, 0.0, 0.72])
FRONT_CAMERA_LOOK_AT = np.array([0.42, 0.0, 0.04])
FRONT_CAMERA_FOVY = 45.0

# Where the distractor waits while no fault plan shows it: under the table and the floor,
# so no camera can see it and the images are exactly those of a scene without it.
DISTRACTOR_PARKED = np.array([0.0, 0.0, -2.0])
DISTRACTOR_HALF_SIZE = 0.03


@dataclass(frozen=True)
class SceneOptions:
    image_size: int = 96
    physics_timestep_s: float = 0.002


def look_at_xyaxes(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo camera `xyaxes` for a camera at `position` looking at `target` with the
    world z axis up (MuJoCo cameras look along their -z axis, y up)."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.concatenate([right, up])


def _fmt(values: np.ndarray | list[float] | tuple[float, ...]) -> str:
    return " ".join(f"{float(v):.12g}" for v in values)


def scene_mjcf(options: SceneOptions | None = None) -> str:
    """The complete MJCF document of the scene."""
    options = options or SceneOptions()
    arm_body, arm_actuators, arm_defaults = arm_mjcf()
    size = max(int(options.image_size), 64)

    slots = "\n".join(
        f'<geom name="slot{i}" type="cylinder" size="{SLOT_RADIUS} 0.0008" '
        f'pos="{_fmt([x, y, 0.0008])}" rgba="0.3 0.3 0.34 1" class="marking"/>'
        f'\n<geom name="slot{i}_centre" type="cylinder" size="0.012 0.0009" '
        f'pos="{_fmt([x, y, 0.0009])}" rgba="0.9 0.9 0.9 1" class="marking"/>'
        for i, (x, y) in enumerate(SLOT_POSITIONS)
    )
    fruits = "\n".join(
        f"""<body name="{name}" pos="{_fmt([0.5, 0.4 + 0.1 * k, FRUIT_RADIUS])}">
  <freejoint name="{name}_joint"/>
  <geom name="{name}_geom" type="sphere" size="{FRUIT_RADIUS}" mass="{FRUIT_MASS}"
        rgba="{FRUIT_COLOURS[name]}" class="fruit"/>
  <geom name="{name}_stem" type="capsule" size="0.004 0.006" pos="0 0 {FRUIT_RADIUS + 0.004}"
        rgba="0.3 0.2 0.08 1" class="marking" mass="0.001"/>
</body>"""
        for k, name in enumerate(FRUITS)
    )
    front_axes = look_at_xyaxes(FRONT_CAMERA_POSITION, FRONT_CAMERA_LOOK_AT)

    return f"""
<mujoco model="swap_fruit">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{options.physics_timestep_s}" integrator="implicitfast" cone="elliptic"
          impratio="10"/>
  <visual>
    <global offwidth="{size}" offheight="{size}"/>
    <quality shadowsize="0" offsamples="0" numslices="12" numstacks="8" numquads="1"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
    <map znear="0.01" zfar="20"/>
  </visual>
  <default>
    <default class="marking">
      <geom contype="0" conaffinity="0" group="2"/>
    </default>
    <default class="fruit">
      <!-- condim 6: torsional and rolling friction stop a released sphere from rolling -->
      <geom contype="1" conaffinity="1" condim="6" friction="1.0 0.01 0.003"
            solref="0.004 1" solimp="0.95 0.99 0.001"/>
    </default>
    {arm_defaults}
  </default>
  <worldbody>
    <light name="sun" directional="true" pos="0.5 0.5 2" dir="-0.3 -0.2 -1"
           diffuse="0.5 0.5 0.5" specular="0 0 0" castshadow="false"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" rgba="0.45 0.47 0.5 1"
          contype="0" conaffinity="0"/>
    <geom name="backdrop" type="box" size="0.01 1.5 1.0" pos="-0.55 0 0.2"
          rgba="0.82 0.84 0.86 1" contype="0" conaffinity="0"/>
    <geom name="table" type="box" size="0.65 0.6 0.02" pos="0.35 0 -0.02"
          rgba="0.76 0.63 0.47 1" contype="1" conaffinity="1" condim="6"
          friction="1.0 0.01 0.003"/>
    {slots}
    <camera name="front" pos="{_fmt(FRONT_CAMERA_POSITION)}" xyaxes="{_fmt(front_axes)}"
            fovy="{FRONT_CAMERA_FOVY}"/>
    {arm_body}
    {fruits}
    <body name="distractor" mocap="true" pos="{_fmt(DISTRACTOR_PARKED)}">
      <geom name="distractor_block" type="box" size="{DISTRACTOR_HALF_SIZE} 0.045 0.03"
            rgba="0.1 0.35 0.9 1" class="marking"/>
      <geom name="distractor_top" type="sphere" size="0.025" pos="0 0 0.045"
            rgba="0.95 0.9 0.1 1" class="marking"/>
    </body>
  </worldbody>
  <contact>
    <exclude body1="fr3_leftfinger" body2="fr3_rightfinger"/>
  </contact>
  <actuator>
    {arm_actuators}
  </actuator>
</mujoco>
"""
