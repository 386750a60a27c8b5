"""SwapFruitEnv: the simulated FR3 swap-fruit task behind the policy's 10 Hz interface.

One `step(action)` = one absolute end-effector target (position, 6D rotation, gripper
width: the `ee_pose` embodiment of robots.embodiment) held for `step_period_s` = 0.1 s
of sim time, during which the controller interpolates the target at 100 Hz and the joint servos
track it at the 500 Hz physics rate. Observations are what the robot and its two
cameras report at the end of the step, after the fault plan is applied.

For hardware-in-the-loop use (the ROS node) the same machinery is exposed in smaller
pieces: `command()` a target, `advance()` the physics, `render()` a camera,
`robot_state()`; `step()` is built from them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from policy.geometry import matrix_to_quat, matrix_to_rot6d, quat_to_matrix, rot6d_to_matrix
from robots.franka import GRIPPER_MAX_WIDTH, GRIPPER_SPEED, HOME_JOINTS
from sim.controller import CartesianController, PoseTarget
from sim.faults import (
    ROBOT_STATE_KEY,
    FaultInjector,
    FaultPlan,
    InjectedFrame,
    distractor_position,
)
from sim.franka import FINGER_JOINT_NAMES, JOINT_NAMES, arm_indices
from sim.scene import (
    CAMERAS,
    DISTRACTOR_PARKED,
    FRUIT_RADIUS,
    FRUITS,
    SLOT_POSITIONS,
    SLOT_RADIUS,
    SceneOptions,
    scene_mjcf,
)

ACTION_DIM = 10
PROPRIO_DIM = 10


@dataclass(frozen=True)
class Workspace:
    """Box (base frame, m) that end-effector targets must lie in."""

    low: tuple[float, float, float] = (0.15, -0.45, 0.005)
    high: tuple[float, float, float] = (0.75, 0.45, 0.6)

    def contains(self, position: np.ndarray) -> bool:
        return bool(np.all(position >= self.low) and np.all(position <= self.high))

    def clip(self, position: np.ndarray) -> np.ndarray:
        return np.clip(position, self.low, self.high)


@dataclass(frozen=True)
class EnvConfig:
    """Simulation settings. `cameras=()` runs physics only (fast expert checks)."""

    image_size: int = 96
    cameras: tuple[str, ...] = CAMERAS
    step_period_s: float = 0.1  # one action; policy.spec: 4 actions per 0.4 s token
    control_rate_hz: float = 100.0  # interpolation + IK rate inside a step
    physics_timestep_s: float = 0.002
    slot_jitter_m: float = 0.01  # uniform +- jitter of each fruit around its slot centre
    workspace: Workspace = field(default_factory=Workspace)
    clip_targets: bool = False  # False: a target outside the workspace raises ValueError
    fault_plan: FaultPlan | None = None  # default plan for every episode
    # Grey-level std of each pixel's sensor noise. A real camera never delivers two
    # identical frames; a renderer does whenever the scene is still, which frame health
    # would rightly call a frozen camera. Seeded by (episode, camera, time): deterministic.
    sensor_noise_sigma: float = 2.0
    # Which fruit the demonstrator moves first: "apple" (a fixed protocol, as a human
    # demonstrator keeps one habit) or "random" (either, per episode). A fixed first fruit
    # keeps the demonstrations unimodal, so a policy trained for minutes on a CPU learns
    # them; memory is needed either way: after the first move the table shows a valid
    # start again, and a memoryless policy moves the apple straight back.
    first_fruit: str = "apple"

    def __post_init__(self) -> None:
        if self.sensor_noise_sigma < 0:
            raise ValueError(f"sensor_noise_sigma must be >= 0, got {self.sensor_noise_sigma}")
        if self.first_fruit not in (*FRUITS, "random"):
            raise ValueError(f"first_fruit must be one of {[*FRUITS, 'random']}, got {self.first_fruit!r}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8 px, got {self.image_size}")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; the scene has {list(CAMERAS)}")
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


@dataclass(frozen=True)
class EpisodeInfo:
    """How an episode started: which fruit sits in which slot and which moves first."""

    seed: int
    fruit_slots: dict[str, int]  # fruit -> slot index (0, 1, 2)
    empty_slot: int
    first_fruit: str  # the fruit the expert moves first (through the empty slot)
    initial_fruit_positions: dict[str, tuple[float, float, float]]

    def goal_slots(self) -> dict[str, int]:
        """Each fruit's goal: the other fruit's starting slot."""
        a, b = FRUITS
        return {a: self.fruit_slots[b], b: self.fruit_slots[a]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "fruit_slots": dict(self.fruit_slots),
            "empty_slot": self.empty_slot,
            "first_fruit": self.first_fruit,
            "initial_fruit_positions": {k: list(v) for k, v in self.initial_fruit_positions.items()},
            "slot_positions": SLOT_POSITIONS.tolist(),
        }


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

    def proprio(self) -> np.ndarray:
        """The policy's 10-D proprioception: position, rotation 6D, gripper width."""
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

    def proprio(self) -> np.ndarray:
        return self.state.proprio()


def make_action(position: np.ndarray, rotation: np.ndarray, gripper_width: float) -> np.ndarray:
    """Pack an absolute target into the policy's 10-D action vector."""
    return np.concatenate(
        [
            np.asarray(position, float),
            matrix_to_rot6d(np.asarray(rotation, float)),
            [float(gripper_width)],
        ]
    )


class SwapFruitEnv:
    """The simulated swap-fruit world. Deterministic: the same seed, fault plan and
    actions give the same observations, bit for bit, on the same machine."""

    def __init__(self, config: EnvConfig | None = None) -> None:
        self.config = config or EnvConfig()
        xml = scene_mjcf(SceneOptions(self.config.image_size, self.config.physics_timestep_s))
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.idx = arm_indices(self.model)
        self._substeps = round(self.config.control_period_s / self.config.physics_timestep_s)
        self._ticks_per_step = round(self.config.step_period_s * self.config.control_rate_hz)
        self.controller = CartesianController(self.model, self.idx, self.config.control_period_s)
        self._fruit_qpos = {
            name: self.model.jnt_qposadr[self._id(mujoco.mjtObj.mjOBJ_JOINT, f"{name}_joint")] for name in FRUITS
        }
        self._fruit_qvel = {
            name: self.model.jnt_dofadr[self._id(mujoco.mjtObj.mjOBJ_JOINT, f"{name}_joint")] for name in FRUITS
        }
        self._distractor_mocap = self.model.body_mocapid[self._id(mujoco.mjtObj.mjOBJ_BODY, "distractor")]
        self._renderer: mujoco.Renderer | None = None
        self._renderer_thread = 0
        self._orphaned_renderers: list[mujoco.Renderer] = []
        self._gripper_reference = GRIPPER_MAX_WIDTH
        self._gripper_target = GRIPPER_MAX_WIDTH
        self._info: EpisodeInfo | None = None
        self._plan = FaultPlan.none()
        self._injector = FaultInjector(self._plan, self.config.cameras)
        self._last_state: RobotState | None = None
        self._last_state_stamp = 0.0
        self._tick_count = 0

    # ---------------------------------------------------------------- episode

    def reset(self, seed: int, fault_plan: FaultPlan | None = None) -> Observation:
        """Start an episode: arm at home, gripper open, fruits in two random slots.
        `fault_plan` overrides EnvConfig.fault_plan for this episode."""
        self.reset_state(seed, fault_plan)
        return self.observe()

    def reset_state(self, seed: int, fault_plan: FaultPlan | None = None) -> EpisodeInfo:
        """`reset` without rendering the first observation (for hardware-in-the-loop use,
        where another thread renders)."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        plan = fault_plan if fault_plan is not None else self.config.fault_plan
        injector = FaultInjector(plan, self.config.cameras)  # checks the plan's camera names
        rng = np.random.default_rng([int(seed), 0x5EED])
        slots = rng.permutation(3)
        fruit_slots = {FRUITS[0]: int(slots[0]), FRUITS[1]: int(slots[1])}
        drawn_first = FRUITS[int(rng.integers(0, 2))]  # drawn always: the other draws stay the same
        first_fruit = drawn_first if self.config.first_fruit == "random" else self.config.first_fruit
        jitter = rng.uniform(-self.config.slot_jitter_m, self.config.slot_jitter_m, size=(2, 2))

        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.idx.arm_qpos] = HOME_JOINTS
        self.data.qpos[self.idx.finger_qpos] = GRIPPER_MAX_WIDTH / 2
        positions = {}
        for k, name in enumerate(FRUITS):
            xy = SLOT_POSITIONS[fruit_slots[name]] + jitter[k]
            position = (float(xy[0]), float(xy[1]), FRUIT_RADIUS)
            adr = self._fruit_qpos[name]
            self.data.qpos[adr : adr + 3] = position
            self.data.qpos[adr + 3 : adr + 7] = (1.0, 0.0, 0.0, 0.0)
            positions[name] = position
        self.data.mocap_pos[self._distractor_mocap] = DISTRACTOR_PARKED
        self.data.ctrl[:] = 0.0
        self.data.ctrl[self.idx.arm_position_actuators] = HOME_JOINTS
        self.data.ctrl[self.idx.finger_actuators] = GRIPPER_MAX_WIDTH / 2
        mujoco.mj_forward(self.model, self.data)

        self.controller.reset(HOME_JOINTS, GRIPPER_MAX_WIDTH)
        self._gripper_reference = GRIPPER_MAX_WIDTH
        self._gripper_target = GRIPPER_MAX_WIDTH
        self._tick_count = 0
        self._info = EpisodeInfo(
            seed=int(seed),
            fruit_slots=fruit_slots,
            empty_slot=int(slots[2]),
            first_fruit=first_fruit,
            initial_fruit_positions=positions,
        )
        self._plan = injector.plan
        self._injector = injector
        self._last_state = None
        self._update_distractor()
        return self._info

    @property
    def info(self) -> EpisodeInfo:
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
            cameras[name] = {
                "height": self.config.image_size,
                "width": self.config.image_size,
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

    # ---------------------------------------------------------------- control

    def step(self, action: np.ndarray) -> Observation:
        """Apply one 10-D absolute target for one step period and observe."""
        position, rotation, width = self.parse_action(action)
        self.command(position, rotation, width, duration_s=self.config.step_period_s)
        self.advance(self._ticks_per_step)
        return self.observe()

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
        current = self.controller.interpolator.end
        if rotation is None:
            rotation = current.rotation
        rotation = np.asarray(rotation, dtype=np.float64)
        if rotation.shape != (3, 3) or not np.all(np.isfinite(rotation)):
            raise ValueError(f"target rotation must be a finite 3x3 matrix, got {rotation.tolist()}")
        if gripper_width is None:
            gripper_width = self._gripper_target
        if not math.isfinite(gripper_width):
            raise ValueError(f"gripper width must be finite, got {gripper_width}")
        # Widths a network predicts slightly outside [0, max] are meant as "fully closed/open".
        self._gripper_target = min(GRIPPER_MAX_WIDTH, max(0.0, float(gripper_width)))
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

    def command_gripper(self, width: float) -> None:
        """Change only the gripper width target (m)."""
        if not math.isfinite(width):
            raise ValueError(f"gripper width must be finite, got {width}")
        self._gripper_target = min(GRIPPER_MAX_WIDTH, max(0.0, float(width)))

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
            start = self.controller.joint_reference
            joints, velocities = self.controller.tick(self.time)
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
        """The image of `camera` now (HxWx3 uint8) with sensor noise, without faults."""
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; the scene has {list(CAMERAS)}")
        if self._renderer is not None and self._renderer_thread != threading.get_ident():
            # An OpenGL context is current in one thread only: a renderer made in another
            # thread is replaced. The old one cannot be freed from here (EGL refuses), so it
            # is kept, not garbage-collected into an error; this happens once per handover.
            self._orphaned_renderers.append(self._renderer)
            self._renderer = None
        if self._renderer is None:
            self._renderer_thread = threading.get_ident()
            size = self.config.image_size
            self._renderer = mujoco.Renderer(self.model, size, size)
            flags = self._renderer.scene.flags
            for flag in (
                mujoco.mjtRndFlag.mjRND_SHADOW,
                mujoco.mjtRndFlag.mjRND_REFLECTION,
                mujoco.mjtRndFlag.mjRND_SKYBOX,
                mujoco.mjtRndFlag.mjRND_FOG,
            ):
                flags[flag] = 0
        self._renderer.update_scene(self.data, camera)
        image = self._renderer.render()
        sigma = self.config.sensor_noise_sigma
        if sigma > 0:
            seed = self._info.seed if self._info is not None else 0
            rng = np.random.default_rng([seed, CAMERAS.index(camera), round(self.time * 1000)])
            noise = rng.standard_normal(image.shape, dtype=np.float32) * sigma
            image = np.clip(image + noise, 0, 255).astype(np.uint8)
        return image

    def camera_frames(self) -> dict[str, InjectedFrame]:
        """Render every configured camera now and pass the frames through the fault
        plan: what the cameras deliver at this instant."""
        t = self.time
        return {c: self._injector.process(c, t, self.render(c)) for c in self.config.cameras}

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

    def fruit_positions(self) -> dict[str, np.ndarray]:
        return {name: self.data.qpos[adr : adr + 3].copy() for name, adr in self._fruit_qpos.items()}

    def fruit_speeds(self) -> dict[str, float]:
        return {name: float(np.linalg.norm(self.data.qvel[adr : adr + 3])) for name, adr in self._fruit_qvel.items()}

    def success_report(self) -> dict[str, Any]:
        """Why the episode is or is not a success: every criterion separately."""
        info = self.info
        goals = info.goal_slots()
        positions = self.fruit_positions()
        speeds = self.fruit_speeds()
        fruits = {}
        for name in FRUITS:
            goal = SLOT_POSITIONS[goals[name]]
            distance = float(np.linalg.norm(positions[name][:2] - goal))
            resting = positions[name][2] < FRUIT_RADIUS + 0.01 and speeds[name] < 0.05
            fruits[name] = {
                "goal_slot": goals[name],
                "distance_to_goal_m": distance,
                "in_goal_slot": distance <= SLOT_RADIUS,
                "resting_on_table": bool(resting),
            }
        state = self.robot_state()
        gripper_open = state.gripper_width >= 0.06
        lowest_fruit_top = max(p[2] for p in positions.values()) + FRUIT_RADIUS
        # Clear: the fingertips (about 1.5 cm below the TCP) are well above every fruit.
        arm_clear = bool(state.ee_position[2] - 0.015 > lowest_fruit_top + 0.03)
        success = (
            all(f["in_goal_slot"] and f["resting_on_table"] for f in fruits.values()) and gripper_open and arm_clear
        )
        return {
            "success": bool(success),
            "fruits": fruits,
            "gripper_open": bool(gripper_open),
            "gripper_width_m": state.gripper_width,
            "arm_clear": arm_clear,
            "time_s": self.time,
        }

    def success(self) -> bool:
        """Both fruits in each other's starting slot and at rest, gripper open, arm clear."""
        return bool(self.success_report()["success"])

    def close(self) -> None:
        """Free the renderer's OpenGL context (a new one is made on the next render).
        Call it from the thread that rendered."""
        if self._renderer is not None:
            renderer, self._renderer = self._renderer, None
            if self._renderer_thread == threading.get_ident():
                renderer.close()
            else:
                self._orphaned_renderers.append(renderer)

    def __enter__(self) -> SwapFruitEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        index = mujoco.mj_name2id(self.model, kind, name)
        if index < 0:
            raise KeyError(f"scene has no {kind.name} named {name!r}")
        return index
