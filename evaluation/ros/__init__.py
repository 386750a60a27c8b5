"""The closed loop through the ROS 2 nodes: node processes (`processes`), this process's
DDS observer (`probe`), one episode driven through the nodes' services (`episode`), and
the run over conditions (`run.run_ros_episodes`).

rclpy is imported only when DDS is opened, so importing this package (and the result
types and report that go with it) works without ROS.
"""

from evaluation.ros.processes import ClosedLoopError, PrivateNetworkError, require_private_network
from evaluation.ros.run import read_checkpoint_spec, run_ros_episodes
from evaluation.ros.settings import ClosedLoopSettings

__all__ = [
    "ClosedLoopError",
    "ClosedLoopSettings",
    "PrivateNetworkError",
    "read_checkpoint_spec",
    "require_private_network",
    "run_ros_episodes",
]
