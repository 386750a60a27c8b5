"""SimEnv: the simulated FR3 running one task (sim.tasks) behind the policy's 10 Hz interface.

One `step(action)` = one absolute target held for `step_period_s` = 0.1 s of sim time.
With the `ee_pose` embodiment (robots.embodiment) the target is an end-effector pose
(position, 6D rotation, gripper width): the controller interpolates it at 100 Hz and
turns it into joint references by differential IK. With `joint_position` it is 7 joint
positions and a gripper width, interpolated in joint space. Either way the joint servos
track the references at the 500 Hz physics rate. Observations are what the robot and its
cameras report at the end of the step, after the fault plan is applied.

The task (sim.tasks.base.SimTask) brings the scene's objects and camera mounts, the
initial state per seed, the success test and the scripted expert; the env owns the arm,
the cameras, control, rendering and fault injection.

For hardware-in-the-loop use (the ROS node) the same machinery is exposed in smaller
pieces: `command()` a target, `advance()` the physics, `render()` a camera,
`robot_state()`; `step()` is built from them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from policy.commanding import SafetyLimits
from policy.geometry import matrix_to_quat, matrix_to_rot6d, quat_to_matrix, rot6d_to_matrix
from robots.embodiment import EMBODIMENTS, embodiment
from robots.franka import ARM_JOINTS, GRIPPER_MAX_WIDTH, GRIPPER_SPEED, HOME_JOINTS
from sim.controller import CartesianController, DifferentialIK, JointController, PoseTarget
from sim.faults import (
    ROBOT_STATE_KEY,
    FaultInjector,
    FaultPlan,
    InjectedFrame,
    distractor_position,
)
from sim.franka import FINGER_JOINT_NAMES, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, arm_indices
from sim.scene import BUILTIN_CAMERAS, DISTRACTOR_PARKED, SceneOptions, scene_mjcf

if TYPE_CHECKING:
    from sim.tasks.base import SimTask, TaskEpisode

ACTION_DIM = 10  # the ee_pose action: position (3) + rotation 6D (6) + gripper width (1)
JOINT_ACTION_DIM = ARM_JOINTS + 1  # the joint_position action: 7 joints + gripper width
PROPRIO_DIM = 10
# Converting an end-effector target to joints (SimEnv.joint_target_for): the controller's
# IK settles within a few iterations (its steady state, a few 1e-5 m off), then the
# polishing IK iterates until the TCP is this close (m and rad together) or gives up.
_TARGET_IK_SETTLE_ITERATIONS = 20
_TARGET_IK_TOLERANCE = 1e-6
_TARGET_IK_ITERATIONS = 100


@dataclass(frozen=True)
class Workspace:
    """Box (base frame, m) that end-effector targets must lie in: the robot description's
    safety box (the simulated FR3's, robots/descriptions/fr3_sim.yaml, unless told another)."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    @classmethod
    def of(cls, limits: SafetyLimits) -> Workspace:
        return cls(tuple(limits.workspace_low), tuple(limits.workspace_high))

    @classmethod
    def simulated_robot(cls) -> Workspace:
        from robots.description import DEFAULT_ROBOT_DESCRIPTION, load_robot_description

        return cls.of(load_robot_description(DEFAULT_ROBOT_DESCRIPTION).safety)

    def contains(self, position: np.ndarray) -> bool:
        return bool(np.all(position >= self.low) and np.all(position <= self.high))

    def clip(self, position: np.ndarray) -> np.ndarray:
        return np.clip(position, self.low, self.high)


@dataclass(frozen=True)
class EnvConfig:
    """Simulation settings. `cameras=()` runs physics only (fast expert checks).

    Every camera renders `image_size` x `image_size` unless `camera_sizes` gives it its
    own (height, width) (MuJoCo renders any width x height). `embodiment` is what
    `step()` takes (robots.embodiment: `ee_pose` or `joint_position`)."""

    image_size: int = 96
    cameras: tuple[str, ...] = BUILTIN_CAMERAS
    camera_sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    embodiment: str = "ee_pose"
    step_period_s: float = 0.1  # one action; policy.spec: 4 actions per 0.4 s token
    control_rate_hz: float = 100.0  # interpolation + IK rate inside a step
    physics_timestep_s: float = 0.002
    slot_jitter_m: float = 0.01  # uniform +- jitter of each fruit around its slot centre
    workspace: Workspace = field(default_factory=Workspace.simulated_robot)
    clip_targets: bool = False  # False: a target outside the workspace raises ValueError
    fault_plan: FaultPlan | None = None  # default plan for every episode
    # Grey-level std of each pixel's sensor noise. A real camera never delivers two
    # identical frames; a renderer does whenever the scene is still, which frame health
    # would rightly call a frozen camera. Seeded by (episode, camera, time): deterministic.
    sensor_noise_sigma: float = 2.0

    def __post_init__(self) -> None:
        if self.sensor_noise_sigma < 0:
            raise ValueError(f"sensor_noise_sigma must be >= 0, got {self.sensor_noise_sigma}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8 px, got {self.image_size}")
        if self.embodiment not in EMBODIMENTS:
            raise ValueError(f"embodiment must be one of {sorted(EMBODIMENTS)}, got {self.embodiment!r}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"camera names must be unique, got {list(self.cameras)}")
        sizes = {}
        for name, size in dict(self.camera_sizes).items():
            if name not in self.cameras:
                raise ValueError(f"camera_sizes names {name!r}, which is not among the cameras {list(self.cameras)}")
            height, width = (int(v) for v in size)
            if height < 8 or width < 8:
                raise ValueError(f"camera {name!r}: height and width must be >= 8 px, got {height}x{width}")
            sizes[name] = (height, width)
        object.__setattr__(self, "camera_sizes", sizes)
        substeps = self.control_period_s / self.physics_timestep_s
        ticks = self.step_period_s * self.control_rate_hz
        if abs(substeps - round(substeps)) > 1e-6 or abs(ticks - round(ticks)) > 1e-6:
            raise ValueError(
                "step_period_s * control_rate_hz and control period / physics_timestep_s "
                f"must be whole numbers (got {ticks} and {substeps})"
            )
        if self.control_rate_hz < 100.0:
            raise ValueError(f"control_rate_hz must be >= 100 Hz, got {self.control_rate_hz}")

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    def image_shape(self, camera: str) -> tuple[int, int]:
        """(height, width) camera `camera` renders."""
        return self.camera_sizes.get(camera, (self.image_size, self.image_size))

    def largest_image(self) -> tuple[int, int]:
        """The largest height and width any camera renders (the offscreen buffer's size)."""
        shapes = [self.image_shape(c) for c in self.cameras] or [(self.image_size, self.image_size)]
        return max(h for h, _ in shapes), max(w for _, w in shapes)


@dataclass(frozen=True)
class RobotState:
    """What franka_robot_state_broadcaster and franka_gripper report (base frame)."""

    time: float
    ee_position: np.ndarray  # (3,) m
    ee_rotation: np.ndarray  # (3, 3)
    joint_positions: np.ndarray  # (7,) rad, fr3_joint1..7
    joint_velocities: np.ndarray  # (7,) rad/s
    finger_positions: np.ndarray  # (2,) m, fr3_finger_joint1..2 (each half the width)

    @property
    def gripper_width(self) -> float:
        return float(self.finger_positions.sum())

    @property
    def ee_quat_xyzw(self) -> np.ndarray:
        return matrix_to_quat(self.ee_rotation)

    @property
    def ee_rot6d(self) -> np.ndarray:
        return matrix_to_rot6d(self.ee_rotation)

    def proprio(self, embodiment: str = "ee_pose") -> np.ndarray:
        """The policy's proprioception: for `ee_pose` position, rotation 6D and gripper
        width (10); for `joint_position` the 7 joint positions and the width (8)."""
        if embodiment == "joint_position":
            return np.concatenate([self.joint_positions, [self.gripper_width]])
        if embodiment != "ee_pose":
            raise ValueError(f"embodiment must be one of {sorted(EMBODIMENTS)}, got {embodiment!r}")
        return np.concatenate([self.ee_position, self.ee_rot6d, [self.gripper_width]])


@dataclass(frozen=True)
class Observation:
    """One step's observation after fault injection.

    images[name] is HxWx3 uint8, or None where the frame was dropped; image_stamps[name]
    is the capture time the frame carries (older than `time` for a delayed frame, NaN
    when dropped). During a robot-state dropout `state` is the last state delivered and
    `state_stamp` its time. `faults` is the ground truth: applied fault kinds per camera
    and under "robot_state"; an empty tuple means a healthy stream.
    """

    time: float
    images: dict[str, np.ndarray | None]
    image_stamps: dict[str, float]
    state: RobotState
    state_stamp: float
    faults: dict[str, tuple[str, ...]]

    @property
    def ee_position(self) -> np.ndarray:
        return self.state.ee_position

    @property
    def ee_quat_xyzw(self) -> np.ndarray:
        return self.state.ee_quat_xyzw

    @property
    def joint_positions(self) -> np.ndarray:
        return self.state.joint_positions

    @property
    def gripper_width(self) -> float:
        return self.state.gripper_width

    def proprio(self, embodiment: str = "ee_pose") -> np.ndarray:
        return self.state.proprio(embodiment)


def make_action(position: np.ndarray, rotation: np.ndarray, gripper_width: float) -> np.ndarray:
    """Pack an absolute target into the policy's 10-D action vector."""
    return np.concatenate(
        [
            np.asarray(position, float),
            matrix_to_rot6d(np.asarray(rotation, float)),
            [float(gripper_width)],
        ]
    )


class SimEnv:
    """The simulated FR3 running `task`. Deterministic: the same task, seed, fault plan and
    actions give the same observations, bit for bit, on the same machine."""

    def __init__(self, config: EnvConfig | None, task: SimTask) -> None:
        self.config = config or EnvConfig()
        self.task = task
        self.camera_mounts = task.camera_names
        unknown = [c for c in self.config.cameras if c not in self.camera_mounts]
        if unknown:
            raise ValueError(
                f"unknown cameras {unknown}; the scene of task {task.name!r} has {list(self.camera_mounts)} "
                "(a task adds camera mounts in its config: sim.cameras)"
            )
        xml = scene_mjcf(
            SceneOptions(self.config.largest_image(), self.config.physics_timestep_s),
            task.scene_objects(),
            task.extra_cameras,
        )
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.idx = arm_indices(self.model)
        self.embodiment = embodiment(self.config.embodiment)
        self._substeps = round(self.config.control_period_s / self.config.physics_timestep_s)
        self._ticks_per_step = round(self.config.step_period_s * self.config.control_rate_hz)
        self.controller = CartesianController(self.model, self.idx, self.config.control_period_s)
        self.joint_controller = JointController(self.config.control_period_s)
        # Which controller makes the joint references: the Cartesian one (pose targets) or
        # the joint one (joint targets); a target of the other kind hands over.
        self._joint_control = False
        # Their own IK (own scratch data): converting a target never disturbs the controller's.
        # The first is the controller's (its pull towards the home posture chooses the
        # elbow); that pull leaves a small steady error in damped least squares, which the
        # second, without it, removes.
        self._target_ik = DifferentialIK(self.model, self.idx)
        self._polish_ik = DifferentialIK(self.model, self.idx, nullspace_gain=0.0)
        self._addresses: dict[tuple[str, str], int] = {}
        self._distractor_mocap = self.model.body_mocapid[self._id(mujoco.mjtObj.mjOBJ_BODY, "distractor")]
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._renderer_thread = 0
        self._orphaned_renderers: list[mujoco.Renderer] = []
        self._gripper_reference = GRIPPER_MAX_WIDTH
        self._gripper_target = GRIPPER_MAX_WIDTH
        self._info: TaskEpisode | None = None
        self._plan = FaultPlan.none()
        self._injector = FaultInjector(self._plan, self.config.cameras)
        self._last_state: RobotState | None = None
        self._last_state_stamp = 0.0
        self._tick_count = 0

    # ---------------------------------------------------------------- episode

    def reset(self, seed: int, fault_plan: FaultPlan | None = None) -> Observation:
        """Start an episode: arm at home, gripper open, the task's objects placed for `seed`.
        `fault_plan` overrides EnvConfig.fault_plan for this episode."""
        self.reset_state(seed, fault_plan)
        return self.observe()

    def reset_state(self, seed: int, fault_plan: FaultPlan | None = None) -> TaskEpisode:
        """`reset` without rendering the first observation (for hardware-in-the-loop use,
        where another thread renders)."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        plan = fault_plan if fault_plan is not None else self.config.fault_plan
        injector = FaultInjector(plan, self.config.cameras)  # checks the plan's camera names

        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.idx.arm_qpos] = HOME_JOINTS
        self.data.qpos[self.idx.finger_qpos] = GRIPPER_MAX_WIDTH / 2
        info = self.task.reset(self, int(seed))
        self.data.mocap_pos[self._distractor_mocap] = DISTRACTOR_PARKED
        self.data.ctrl[:] = 0.0
        self.data.ctrl[self.idx.arm_position_actuators] = HOME_JOINTS
        self.data.ctrl[self.idx.finger_actuators] = GRIPPER_MAX_WIDTH / 2
        mujoco.mj_forward(self.model, self.data)

        self.controller.reset(HOME_JOINTS, GRIPPER_MAX_WIDTH)
        self.joint_controller.reset(HOME_JOINTS)
        self._joint_control = False
        self._gripper_reference = GRIPPER_MAX_WIDTH
        self._gripper_target = GRIPPER_MAX_WIDTH
        self._tick_count = 0
        self._info = info
        self._plan = injector.plan
        self._injector = injector
        self._last_state = None
        self._update_distractor()
        return self._info

    @property
    def info(self) -> Any:
        """The task's info about the current episode (sim.tasks.base.TaskEpisode)."""
        if self._info is None:
            raise RuntimeError("no episode yet: call reset(seed) first")
        return self._info

    @property
    def fault_plan(self) -> FaultPlan:
        return self._plan

    @property
    def time(self) -> float:
        """Sim time since the episode start (s), exact in control ticks."""
        return self._tick_count * self.config.control_period_s

    def describe(self) -> dict[str, Any]:
        """Robot and camera description for episode metadata."""
        cameras = {}
        for name in self.config.cameras:
            camera = self._id(mujoco.mjtObj.mjOBJ_CAMERA, name)
            height, width = self.config.image_shape(name)
            cameras[name] = {
                "height": height,
                "width": width,
                "encoding": "rgb8",
                "fovy_deg": float(self.model.cam_fovy[camera]),
                "mount": "hand (fr3_hand)" if name == "wrist" else "world (static)",
            }
        return {
            "robot": "Franka Research 3 (simulated, MuJoCo)",
            "base_frame": "fr3_link0",
            "joint_names": list(JOINT_NAMES),
            "gripper_joint_names": list(FINGER_JOINT_NAMES),
            "gripper_max_width_m": GRIPPER_MAX_WIDTH,
            "step_period_s": self.config.step_period_s,
            "control_rate_hz": self.config.control_rate_hz,
            "physics_timestep_s": self.config.physics_timestep_s,
            "cameras": cameras,
            "mujoco_version": mujoco.__version__,
        }

    def qpos_address(self, joint: str) -> int:
        """Where joint `joint` of the scene starts in data.qpos (a task's objects)."""
        return self._address(joint, "qpos")

    def dof_address(self, joint: str) -> int:
        """Where joint `joint` of the scene starts in data.qvel."""
        return self._address(joint, "dof")

    def _address(self, joint: str, kind: str) -> int:
        key = (joint, kind)
        if key not in self._addresses:
            index = self._id(mujoco.mjtObj.mjOBJ_JOINT, joint)
            table = self.model.jnt_qposadr if kind == "qpos" else self.model.jnt_dofadr
            self._addresses[key] = int(table[index])
        return self._addresses[key]

    # ---------------------------------------------------------------- control

    def step(self, action: np.ndarray) -> Observation:
        """Apply one absolute target of the env's embodiment for one step period and
        observe: 10-D (position, rotation 6D, gripper) for `ee_pose`, 8-D (7 joints,
        gripper) for `joint_position`."""
        if self.embodiment.name == "joint_position":
            joints, width = self.parse_joint_action(action)
            self.command_joints(joints, width, duration_s=self.config.step_period_s)
        else:
            position, rotation, width = self.parse_action(action)
            self.command(position, rotation, width, duration_s=self.config.step_period_s)
        self.advance(self._ticks_per_step)
        return self.observe()

    def expert_action(self, action: np.ndarray) -> np.ndarray:
        """A scripted expert's 10-D end-effector target as this env's action: itself for
        `ee_pose`, the joints that reach it (joint_target_for) and the width for
        `joint_position`."""
        if self.embodiment.name != "joint_position":
            return action
        position, rotation, width = self.parse_action(action)
        return np.concatenate([self.joint_target_for(position, rotation), [width]])

    def parse_action(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Split and check a 10-D action; errors name what is wrong."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(
                f"action must have shape ({ACTION_DIM},) = position(3) + rotation_6d(6) + gripper(1), got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            names = ["x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper"]
            bad = [n for n, v in zip(names, a, strict=True) if not math.isfinite(v)]
            raise ValueError(f"action has non-finite components {bad}: {a.tolist()}")
        rotation = rot6d_to_matrix(a[3:9])
        return a[:3], rotation, float(a[9])

    def parse_joint_action(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Split and check an 8-D joint action (7 joint positions, gripper width)."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (JOINT_ACTION_DIM,):
            raise ValueError(
                f"a joint action must have shape ({JOINT_ACTION_DIM},) = joints({ARM_JOINTS}) + gripper(1), "
                f"got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            names = [*(f"joint{i}" for i in range(1, ARM_JOINTS + 1)), "gripper"]
            bad = [n for n, v in zip(names, a, strict=True) if not math.isfinite(v)]
            raise ValueError(f"joint action has non-finite components {bad}: {a.tolist()}")
        return a[:ARM_JOINTS], float(a[ARM_JOINTS])

    def command(
        self,
        position: np.ndarray,
        rotation: np.ndarray | None = None,
        gripper_width: float | None = None,
        duration_s: float | None = None,
    ) -> None:
        """Set a new absolute target; the controller moves the reference there over
        `duration_s` (default one step period). `rotation` is a 3x3 matrix (None keeps
        the current target orientation), `gripper_width` in m (None keeps the current)."""
        if self._info is None:
            raise RuntimeError("no episode yet: call reset(seed) first")
        position = np.asarray(position, dtype=np.float64)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f"target position must be 3 finite numbers, got {position.tolist()}")
        workspace = self.config.workspace
        if not workspace.contains(position):
            if not self.config.clip_targets:
                raise ValueError(
                    f"target position {np.round(position, 4).tolist()} m is outside the reachable "
                    f"workspace box low={list(workspace.low)} high={list(workspace.high)} "
                    "(set EnvConfig.clip_targets=True to clip instead)"
                )
            position = workspace.clip(position)
        if self._joint_control:
            # Joint targets were in charge: the Cartesian reference starts where they left the arm.
            self.controller.reset(self.joint_controller.joint_reference, self._gripper_target)
            self._joint_control = False
        current = self.controller.interpolator.end
        if rotation is None:
            rotation = current.rotation
        rotation = np.asarray(rotation, dtype=np.float64)
        if rotation.shape != (3, 3) or not np.all(np.isfinite(rotation)):
            raise ValueError(f"target rotation must be a finite 3x3 matrix, got {rotation.tolist()}")
        if gripper_width is not None:
            self.command_gripper(gripper_width)
        duration = self.config.step_period_s if duration_s is None else float(duration_s)
        self.controller.retarget(self.time, PoseTarget(position, rotation, self._gripper_target), duration)

    def command_quaternion(
        self,
        position: np.ndarray,
        quat_xyzw: np.ndarray,
        gripper_width: float | None = None,
        duration_s: float | None = None,
    ) -> None:
        """`command` with the orientation as a geometry_msgs quaternion (x, y, z, w)."""
        self.command(position, quat_to_matrix(quat_xyzw), gripper_width, duration_s)

    def command_joints(
        self, joints: np.ndarray, gripper_width: float | None = None, duration_s: float | None = None
    ) -> None:
        """Set new absolute joint targets (fr3_joint1..7, rad): the joint references move
        there in a straight line in joint space over `duration_s` (default one step
        period), no joint faster than the servos allow. A target outside the joint limits
        raises ValueError (or is clipped with EnvConfig.clip_targets)."""
        if self._info is None:
            raise RuntimeError("no episode yet: call reset(seed) first")
        joints = np.asarray(joints, dtype=np.float64)
        if joints.shape != (ARM_JOINTS,) or not np.all(np.isfinite(joints)):
            raise ValueError(f"joint targets must be {ARM_JOINTS} finite numbers, got {joints.tolist()}")
        outside = (joints < JOINT_LOWER) | (joints > JOINT_UPPER)
        if np.any(outside):
            if not self.config.clip_targets:
                named = {JOINT_NAMES[i]: round(float(joints[i]), 4) for i in np.flatnonzero(outside)}
                raise ValueError(
                    f"joint targets {named} rad are outside the joint limits "
                    f"(lower {np.round(JOINT_LOWER, 4).tolist()}, upper {np.round(JOINT_UPPER, 4).tolist()}; "
                    "set EnvConfig.clip_targets=True to clip instead)"
                )
            joints = np.clip(joints, JOINT_LOWER, JOINT_UPPER)
        if not self._joint_control:
            self.joint_controller.reset(self.controller.joint_reference)
            self._joint_control = True
        if gripper_width is not None:
            self.command_gripper(gripper_width)
        duration = self.config.step_period_s if duration_s is None else float(duration_s)
        self.joint_controller.retarget(self.time, joints, duration)

    def command_gripper(self, width: float) -> None:
        """Change only the gripper width target (m)."""
        if not math.isfinite(width):
            raise ValueError(f"gripper width must be finite, got {width}")
        # Widths a network predicts slightly outside [0, max] are meant as "fully closed/open".
        self._gripper_target = min(GRIPPER_MAX_WIDTH, max(0.0, float(width)))

    @property
    def joint_reference(self) -> np.ndarray:
        """The joint references the servos are tracking now (whichever controller makes them)."""
        active = self.joint_controller if self._joint_control else self.controller
        return active.joint_reference.copy()

    def joint_target_for(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """The joint positions that put the TCP at `position` with `rotation`: the
        controller's damped-least-squares IK (with its pull towards the home posture),
        iterated to convergence from the current joint reference. How a scripted
        expert's end-effector targets become a joint-space robot's targets."""
        position = np.asarray(position, dtype=np.float64)
        rotation = np.asarray(rotation, dtype=np.float64)
        unlimited = np.full(ARM_JOINTS, np.inf)
        joints = self._target_ik.solve(
            self.joint_reference, position, rotation, unlimited, _TARGET_IK_SETTLE_ITERATIONS
        )
        return self._polish_ik.solve(joints, position, rotation, unlimited, _TARGET_IK_ITERATIONS, _TARGET_IK_TOLERANCE)

    def advance(self, ticks: int = 1) -> None:
        """Run `ticks` control periods (10 ms each at 100 Hz) of control and physics."""
        if self._info is None:
            raise RuntimeError("no episode yet: call reset(seed) first")
        data, model = self.data, self.model
        position_actuators = self.idx.arm_position_actuators
        velocity_actuators = self.idx.arm_velocity_actuators
        finger_actuators = self.idx.finger_actuators
        gripper_step = GRIPPER_SPEED * self.config.control_period_s
        for _ in range(ticks):
            self._tick_count += 1
            active = self.joint_controller if self._joint_control else self.controller
            start = active.joint_reference
            joints, velocities = active.tick(self.time)
            # The finger reference moves at the hand's speed. When the fingers are held
            # back (closed on a fruit, the reference far below the measured width) an
            # opening command starts from the measured width, as the real hand's move
            # does, instead of first ramping the reference back up through the fruit.
            measured = float(data.qpos[self.idx.finger_qpos].sum())
            delta = self._gripper_target - self._gripper_reference
            if (delta > 0 and measured > self._gripper_reference) or (
                delta < 0 and measured < self._gripper_reference - 0.002
            ):
                self._gripper_reference = measured
                delta = self._gripper_target - self._gripper_reference
            self._gripper_reference += max(-gripper_step, min(gripper_step, delta))
            data.ctrl[finger_actuators] = self._gripper_reference / 2
            data.ctrl[velocity_actuators] = velocities
            self._update_distractor()
            for k in range(1, self._substeps + 1):
                # Ramp the position reference inside the tick so the servos see no steps.
                data.ctrl[position_actuators] = start + (joints - start) * (k / self._substeps)
                mujoco.mj_step(model, data)

    def _update_distractor(self) -> None:
        event = self._plan.distractor_event(self.time)
        position = DISTRACTOR_PARKED if event is None else distractor_position(event, self.time)
        self.data.mocap_pos[self._distractor_mocap] = position

    # ------------------------------------------------------------ observation

    def robot_state(self) -> RobotState:
        """The true robot state now (no faults applied)."""
        site = self.idx.tcp_site
        return RobotState(
            time=self.time,
            ee_position=self.data.site_xpos[site].copy(),
            ee_rotation=self.data.site_xmat[site].reshape(3, 3).copy(),
            joint_positions=self.data.qpos[self.idx.arm_qpos].copy(),
            joint_velocities=self.data.qvel[self.idx.arm_dof].copy(),
            finger_positions=self.data.qpos[self.idx.finger_qpos].copy(),
        )

    def render(self, camera: str) -> np.ndarray:
        """The image of `camera` now (HxWx3 uint8, its EnvConfig size) with sensor noise,
        without faults."""
        if camera not in self.camera_mounts:
            raise ValueError(f"unknown camera {camera!r}; the scene has {list(self.camera_mounts)}")
        if self._renderers and self._renderer_thread != threading.get_ident():
            # An OpenGL context is current in one thread only: renderers made in another
            # thread are replaced. The old ones cannot be freed from here (EGL refuses), so
            # they are kept, not garbage-collected into an error; this happens once per handover.
            self._orphaned_renderers.extend(self._renderers.values())
            self._renderers = {}
        height, width = self.config.image_shape(camera)
        renderer = self._renderers.get((height, width))
        if renderer is None:
            # One renderer per image size (a renderer draws at one size).
            self._renderer_thread = threading.get_ident()
            renderer = mujoco.Renderer(self.model, height, width)
            flags = renderer.scene.flags
            for flag in (
                mujoco.mjtRndFlag.mjRND_SHADOW,
                mujoco.mjtRndFlag.mjRND_REFLECTION,
                mujoco.mjtRndFlag.mjRND_SKYBOX,
                mujoco.mjtRndFlag.mjRND_FOG,
            ):
                flags[flag] = 0
            self._renderers[(height, width)] = renderer
        renderer.update_scene(self.data, camera)
        image = renderer.render()
        sigma = self.config.sensor_noise_sigma
        if sigma > 0:
            seed = self._info.seed if self._info is not None else 0
            rng = np.random.default_rng([seed, self.camera_mounts.index(camera), round(self.time * 1000)])
            noise = rng.standard_normal(image.shape, dtype=np.float32) * sigma
            image = np.clip(image + noise, 0, 255).astype(np.uint8)
        return image

    def camera_frames(self, cameras: tuple[str, ...] | None = None) -> dict[str, InjectedFrame]:
        """Render every configured camera (or those of `cameras`, in configured order) now
        and pass the frames through the fault plan: what the cameras deliver at this instant."""
        t = self.time
        wanted = self.config.cameras if cameras is None else [c for c in self.config.cameras if c in cameras]
        return {c: self._injector.process(c, t, self.render(c)) for c in wanted}

    def state_dropout_active(self) -> bool:
        """True while the fault plan withholds the robot state."""
        return self._plan.state_dropout(self.time)

    def observe(self) -> Observation:
        """Render the cameras, read the robot state and apply the fault plan for now."""
        t = self.time
        frames = self.camera_frames()
        images = {c: f.image for c, f in frames.items()}
        stamps = {c: f.stamp for c, f in frames.items()}
        faults = {c: f.faults for c, f in frames.items()}
        state = self.robot_state()
        dropout = self.state_dropout_active()
        faults[ROBOT_STATE_KEY] = ("state_dropout",) if dropout else ()
        if dropout and self._last_state is not None:
            state, stamp = self._last_state, self._last_state_stamp
        else:
            # A dropout at the very first frame still delivers it: there is nothing older.
            self._last_state, self._last_state_stamp = state, t
            stamp = t
        return Observation(
            time=t,
            images=images,
            image_stamps=stamps,
            state=state,
            state_stamp=stamp,
            faults=faults,
        )

    # ------------------------------------------------------------- task state

    def success_report(self) -> dict[str, Any]:
        """Why the episode is or is not a success, criterion by criterion (the task's test)."""
        return self.task.success_report(self)

    def success(self) -> bool:
        return bool(self.success_report()["success"])

    def close(self) -> None:
        """Free the renderer's OpenGL context (a new one is made on the next render).
        Call it from the thread that rendered."""
        renderers, self._renderers = list(self._renderers.values()), {}
        for renderer in renderers:
            if self._renderer_thread == threading.get_ident():
                renderer.close()
            else:
                self._orphaned_renderers.append(renderer)

    def __enter__(self) -> SimEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        index = mujoco.mj_name2id(self.model, kind, name)
        if index < 0:
            raise KeyError(f"scene has no {kind.name} named {name!r}")
        return index
