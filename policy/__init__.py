"""The causal Diffusion Forcing policy with latent memory and its real-time runtime.

Imports torch, numpy, safetensors and yaml only: never rclpy, zarr or hydra, so the
policy node's import path runs on ROS 2 Humble (Python 3.10) as well as Jazzy.
"""
