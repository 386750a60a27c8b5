"""Evaluation of a policy: result types, the conditions episodes run under, in-process
rollouts through the deployed commanding path, the ROS 2 closed loop (`evaluation.ros`)
and the report folder.

Importing this package imports neither rclpy nor torch: every module loads them where
it needs them. Layers below (`policy`, `data_collection`, `training`, `sim`) never import
it; it never imports the command line (`dfstack`).
"""
