"""Rotation conventions shared by the simulator, the episode store, the policy and the
ROS nodes (numpy only).

Quaternions are (x, y, z, w) as in geometry_msgs. The policy's rotation is the
"6D" representation: the first two columns of the rotation matrix, flattened
column by column as (r11, r21, r31, r12, r22, r32); it is continuous, which
quaternions (sign flip) and Euler angles (wrap) are not.
"""

from __future__ import annotations

import numpy as np


def quat_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) to (..., 3, 3) rotation matrices."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"quaternion must have 4 components (x, y, z, w), got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~np.isfinite(norm)) or np.any(norm < 1e-9):
        raise ValueError("quaternion is zero, NaN or infinite")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices to (..., 4) unit quaternions (x, y, z, w), w >= 0."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrix must be 3x3, got shape {m.shape}")
    flat = m.reshape(-1, 3, 3)
    out = np.empty((flat.shape[0], 4))
    for i, r in enumerate(flat):
        trace = r[0, 0] + r[1, 1] + r[2, 2]
        if trace > 0:
            s = 2.0 * np.sqrt(trace + 1.0)
            q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
            q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
        elif r[1, 1] > r[2, 2]:
            s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
            q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
        else:
            s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
            q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
        q = np.asarray(q)
        out[i] = q / np.linalg.norm(q) * (1.0 if q[3] >= 0 else -1.0)
    return out.reshape((*m.shape[:-2], 4))


def matrix_to_rot6d(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) to (..., 6): first column then second column."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """(..., 6) to (..., 3, 3) by Gram-Schmidt, so a network's inexact output still
    gives a proper rotation."""
    r = np.asarray(rot6d, dtype=np.float64)
    if r.shape[-1] != 6:
        raise ValueError(f"6D rotation must have 6 components, got shape {r.shape}")
    a, b = r[..., :3], r[..., 3:]
    a_norm = np.linalg.norm(a, axis=-1, keepdims=True)
    if np.any(a_norm < 1e-9):
        raise ValueError("6D rotation has a zero first column")
    x = a / a_norm
    b = b - np.sum(x * b, axis=-1, keepdims=True) * x
    b_norm = np.linalg.norm(b, axis=-1, keepdims=True)
    if np.any(b_norm < 1e-9):
        raise ValueError("6D rotation columns are parallel")
    y = b / b_norm
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def quat_to_rot6d(quat_xyzw: np.ndarray) -> np.ndarray:
    return matrix_to_rot6d(quat_to_matrix(quat_xyzw))


def rot6d_to_quat(rot6d: np.ndarray) -> np.ndarray:
    return matrix_to_quat(rot6d_to_matrix(rot6d))


def rotation_angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad) of the relative rotation between (..., 3, 3) matrices a and b."""
    relative = np.swapaxes(np.asarray(a), -1, -2) @ np.asarray(b)
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))
