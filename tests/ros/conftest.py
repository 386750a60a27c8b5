"""ROS package tests: import df_policy from its source tree (colcon is not needed) and
render offscreen with EGL."""

import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "df_policy"
if str(PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(PACKAGE_ROOT))
