"""The cell every simulated task shares: a table, the FR3 arm, the built-in front and wrist
cameras, camera mounts a task adds, and a (normally hidden) distractor object. A task
(sim/tasks) brings its own objects as MJCF fragments (`SceneObjects`).

Everything is expressed in the robot base frame fr3_link0, which is also MuJoCo's world
frame: the table top is the plane z = 0 and the arm stands on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sim.franka import arm_mjcf

# The cameras every scene has: "front" on a tripod in front of the table, "wrist" on the
# hand (its mount is part of the arm's MJCF, sim/franka.py).
BUILTIN_CAMERAS: tuple[str, ...] = ("front", "wrist")

# Where the distractor waits while no fault plan shows it: under the table and the floor,
# so no camera can see it and the images are exactly those of a scene without it.
DISTRACTOR_PARKED = np.array([0.0, 0.0, -2.0])
DISTRACTOR_HALF_SIZE = 0.03
# The offscreen buffer is never smaller than this (MuJoCo's renderer needs one at least
# as large as the largest image; 64 px keeps small test renders on the same buffer size).
MIN_OFFSCREEN_PX = 64


@dataclass(frozen=True)
class CameraMount:
    """A camera fixed in the world: where it stands, the point it looks at (base frame, m)
    and its vertical field of view (degrees). A task's config declares one as
    `cameras: {side: {position: [x, y, z], look_at: [x, y, z], fovy: 60}}`."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    fovy: float = 45.0

    def __post_init__(self) -> None:
        position, target = np.asarray(self.position, float), np.asarray(self.look_at, float)
        if position.shape != (3,) or target.shape != (3,):
            raise ValueError(
                f"a camera mount needs position and look_at as [x, y, z], got {self.position!r} and {self.look_at!r}"
            )
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(target))):
            raise ValueError(f"camera mount position and look_at must be finite, got {self.position}, {self.look_at}")
        forward = target - position
        if np.linalg.norm(forward) < 1e-6 or np.linalg.norm(np.cross(forward, [0.0, 0.0, 1.0])) < 1e-6:
            raise ValueError(
                f"camera mount at {list(self.position)} looking at {list(self.look_at)}: the view direction must "
                "be non-zero and not vertical (the image's up is the world's z axis)"
            )
        if not 1.0 <= float(self.fovy) <= 170.0:
            raise ValueError(f"camera mount fovy must be in [1, 170] degrees, got {self.fovy}")
        object.__setattr__(self, "position", tuple(float(v) for v in position))
        object.__setattr__(self, "look_at", tuple(float(v) for v in target))
        object.__setattr__(self, "fovy", float(self.fovy))


FRONT_CAMERA = CameraMount(position=(0.98, 0.0, 0.72), look_at=(0.42, 0.0, 0.04), fovy=45.0)


@dataclass(frozen=True)
class SceneObjects:
    """What a task adds to the cell, as MJCF fragments: `defaults` (<default> classes),
    `markings` (table-top geoms, placed right after the table) and `bodies` (the objects,
    placed after the arm). The order of geoms is part of the physics (contact order) and
    of the pictures, so a task's fragments always land in the same places."""

    model_name: str
    defaults: str = ""
    markings: str = ""
    bodies: str = ""


@dataclass(frozen=True)
class SceneOptions:
    """`image_size`: the largest image rendered, one number (square) or (height, width)."""

    image_size: int | tuple[int, int] = 96
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


def mjcf_vector(values: np.ndarray | list[float] | tuple[float, ...]) -> str:
    """Numbers as an MJCF attribute value (12 significant digits)."""
    return " ".join(f"{float(v):.12g}" for v in values)


def camera_mount_mjcf(name: str, mount: CameraMount) -> str:
    """The <camera> element of a world-fixed camera."""
    axes = look_at_xyaxes(np.asarray(mount.position), np.asarray(mount.look_at))
    position, fovy = mjcf_vector(mount.position), f"{mount.fovy:.12g}"
    return f'<camera name="{name}" pos="{position}" xyaxes="{mjcf_vector(axes)}" fovy="{fovy}"/>'


def scene_mjcf(
    options: SceneOptions | None = None,
    objects: SceneObjects | None = None,
    cameras: Mapping[str, CameraMount] | None = None,
) -> str:
    """The complete MJCF document: the cell, a task's `objects` and its extra world-fixed
    `cameras` (besides the built-in front and wrist cameras)."""
    options = options or SceneOptions()
    objects = objects or SceneObjects("cell")
    cameras = dict(cameras or {})
    clash = sorted(set(cameras) & set(BUILTIN_CAMERAS))
    if clash:
        raise ValueError(f"camera mounts {clash} are built in; a task adds cameras under other names")
    arm_body, arm_actuators, arm_defaults = arm_mjcf()
    size = options.image_size
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    offheight, offwidth = max(height, MIN_OFFSCREEN_PX), max(width, MIN_OFFSCREEN_PX)
    extra_cameras = "".join(f"\n    {camera_mount_mjcf(name, mount)}" for name, mount in cameras.items())

    return f"""
<mujoco model="{objects.model_name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{options.physics_timestep_s}" integrator="implicitfast" cone="elliptic"
          impratio="10"/>
  <visual>
    <global offwidth="{offwidth}" offheight="{offheight}"/>
    <quality shadowsize="0" offsamples="0" numslices="12" numstacks="8" numquads="1"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
    <map znear="0.01" zfar="20"/>
  </visual>
  <default>
    <default class="marking">
      <geom contype="0" conaffinity="0" group="2"/>
    </default>
    {objects.defaults}
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
    {objects.markings}
    {camera_mount_mjcf("front", FRONT_CAMERA)}{extra_cameras}
    {arm_body}
    {objects.bodies}
    <body name="distractor" mocap="true" pos="{mjcf_vector(DISTRACTOR_PARKED)}">
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
