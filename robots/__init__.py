"""Embodiments and robot descriptions: what a robot measures and takes as commands.

- `robots.franka`: Franka's published kinematics and limits (FR3 and Panda/FER), in one
  place for the simulator, the command sinks and the safety checks.
- `robots.embodiment`: what the proprioception and the action vector are, how recorded
  streams become them and how an action becomes a command (end-effector pose, joint space).
- `robots.description`: a robot description (YAML) owns the robot's facts: embodiment,
  cameras and their topics, state topics, command and gripper sinks, safety limits.

numpy and yaml only (plus `policy`'s specs and commanding limits): the policy node
imports this on the robot computer (Python 3.10, ROS 2 Humble).
"""
