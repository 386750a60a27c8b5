"""One private rclpy context with the nodes under test and a probe node, spun by a
single executor thread (rclpy's thread-pool executor busy-spins while a callback
waits for a worker, starving the simulator of the GIL on a loaded machine)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class RosHarness:
    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.probe = rclpy.create_node("probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []
        self.spinning = threading.Event()
        self.thread: threading.Thread | None = None

    def spin(self, *nodes: Node) -> None:
        """Add the nodes under test (the probe is added too) and start spinning."""
        self.nodes = [*nodes, self.probe]
        for node in self.nodes:
            self.executor.add_node(node)
        self.spinning.set()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        # spin_once in a loop (not executor.spin) so close() can stop spinning before the
        # executor shuts down: no callback runs into a destroyed entity.
        while self.spinning.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def call(self, service_type: Any, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.probe.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=10.0), f"service {name} not available"
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f"a response from {name}")
        return future.result()

    def after_spinning(self) -> None:
        """Release what the nodes hold once no callback can run any more (override)."""

    def close(self) -> None:
        """Stop spinning, then take every node down; subclasses stop their nodes' own
        threads first."""
        self.spinning.clear()
        if self.thread is not None:
            self.thread.join(timeout=5.0)
        for node in self.nodes:
            self.executor.remove_node(node)  # no task of theirs outlives them
        self.executor.shutdown()
        self.after_spinning()
        for node in self.nodes:
            node.destroy_node()
        rclpy.shutdown(context=self.context)


def write_robot_description(
    path: Any,
    base: str = "fr3_sim",
    camera_size: int | None = None,
    camera_changes: dict[str, Any] | None = None,
    **changes: Any,
) -> str:
    """A robot description derived from `base` (robots/descriptions/), written to `path`:
    the tests' simulated cameras at `camera_size`, `camera_changes` applied to every
    camera (e.g. transport="compressed"), and top-level keys replaced by `changes` (e.g.
    embodiment="joint_position"). Returns the path as a string."""
    from pathlib import Path

    import yaml

    from robots.description import robot_description_path

    data = yaml.safe_load(robot_description_path(base).read_text())
    for camera in data["cameras"]:
        if camera_size is not None:
            camera["height"] = camera["width"] = camera_size
        camera.update(camera_changes or {})
    data.update(changes)
    data["name"] = f"{data['name']}_test"
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@dataclass(frozen=True)
class RobotTopics:
    """A robot description's topics as nodes without a namespace resolve them (what a
    probe subscribes or publishes to): the tests read them there, never keep a copy."""

    current_pose: str
    measured_joint_states: str
    gripper_joint_states: str
    command: str
    gripper_command: str  # "" unless the gripper sink is a width topic
    cameras: dict[str, str]  # camera name -> image topic
    frame_id: str


def robot_topics(robot: Any = "fr3_sim") -> RobotTopics:
    """The topics of `robot`: a RobotDescription, or a description's name or path."""
    from robots.description import RobotDescription, absolute_topic, load_robot_description

    if not isinstance(robot, RobotDescription):
        robot = load_robot_description(robot)
    state = robot.state
    return RobotTopics(
        current_pose=absolute_topic(state.current_pose_topic),
        measured_joint_states=absolute_topic(state.measured_joint_states_topic),
        gripper_joint_states=absolute_topic(state.gripper_joint_states_topic),
        command=absolute_topic(robot.command.topic),
        gripper_command=absolute_topic(robot.gripper.topic) if robot.gripper.sink == "width_topic" else "",
        cameras={camera.name: absolute_topic(camera.topic) for camera in robot.cameras},
        frame_id=robot.frame_id,
    )
