"""What policy_node publishes for programs that watch it, named once.

policy_node publishes with these names and evaluation.ros reads with them, so neither
parses the other's human-readable text:

- each camera's predicted frame on its own topic, ``~/predicted_frame/<camera>``
  (sensor_msgs/Image rgb8 at the model's own size, stamped with the observation time
  of the tick that predicted it);
- in ``/diagnostics``, one status for the policy loop and one per camera, told apart by
  their names, with the key/value pairs below; values are decimal integers where the
  key says a count or a level.

No rclpy here: importing this module opens nothing.
"""

PREDICTED_FRAME_TOPIC = "~/predicted_frame/{camera}"

# Keys of the policy-loop status.
TICKS = "ticks"
WATCHDOG_STOPS = "watchdog_stops"
DROPPED_ACTIONS = "dropped_actions"
ADJUSTED_COMMANDS = "adjusted_commands"
REJECTED_COMMANDS = "rejected_commands"

# Keys of each camera's status.
NOISE_LEVEL = "noise_level"  # k of the camera's frame at the last tick
MAX_NOISE_LEVEL = "max_noise_level"  # K: the level of a frame fed as pure noise
ISSUES = "issues"  # frame-health issues joined by ISSUE_SEPARATOR ("" = none)
ISSUE_SEPARATOR = ","


def predicted_frame_topic(camera: str, node_name: str = "") -> str:
    """The topic of `camera`'s predicted frame: relative to the node (``~/...``) without
    `node_name`, else the absolute name under that node."""
    relative = PREDICTED_FRAME_TOPIC.format(camera=camera)
    return f"/{node_name}{relative[1:]}" if node_name else relative


def loop_status_name(node_name: str) -> str:
    """The name of the node's policy-loop status in /diagnostics."""
    return f"{node_name}: policy loop"


def camera_status_name(node_name: str, camera: str) -> str:
    """The name of `camera`'s frame-health status in /diagnostics."""
    return f"{node_name}: camera {camera}"
