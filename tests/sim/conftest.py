"""Simulation tests render offscreen: pick EGL before anything imports mujoco."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
