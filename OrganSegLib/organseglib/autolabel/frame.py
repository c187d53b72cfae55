"""Where a voxel lies in the patient's cross-section: front to back, and left or right of the midline.

The bone labeler's anatomical rules are stated in these terms (``spine.py``: the spinal canal lies on
the midline in the back half of the body; ``cartilage.py``: costal cartilage lies in the front third,
beside the midline). Both are read off the body mask slice by slice, on arrays ``[k, j, i]`` in LPS
order (``j`` grows towards the back, ``i`` towards the patient's left), as ``autolabel`` passes them.
"""

from __future__ import annotations

import numpy as np


def _extent(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a 2D boolean array: first and last True column, and whether there is any."""
    any_ = rows.any(axis=1)
    first = np.where(any_, np.argmax(rows, axis=1), 0)
    last = np.where(any_, rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1), 0)
    return first, last, any_


def depth_front_to_back(body: np.ndarray) -> np.ndarray:
    """``[k, j]`` float32: 0 at the body's front (its first row ``j`` in slice ``k``), 1 at its back;
    NaN on slices without body."""
    first, last, any_ = _extent(np.asarray(body, dtype=bool).any(axis=2))
    j = np.arange(body.shape[1], dtype=np.float32)
    depth = (j[None, :] - first[:, None]) / np.maximum(last - first, 1)[:, None]
    depth[~any_] = np.nan
    return depth.astype(np.float32)


def offset_from_midline_mm(body: np.ndarray, spacing_i: float) -> np.ndarray:
    """``[k, i]`` float32: signed distance in mm from the midline of slice ``k``, the column that
    halves the body's cross-section (its median column: an arm at one side moves it less than it moves
    the middle of the extent); NaN on slices without body."""
    counts = np.asarray(body, dtype=bool).sum(axis=1, dtype=np.int64)  # [k, i]
    total = counts.sum(axis=1)
    cumulative = np.cumsum(counts, axis=1)
    middle = np.array([np.searchsorted(c, t / 2.0) for c, t in zip(cumulative, total)], dtype=np.float32)
    i = np.arange(body.shape[2], dtype=np.float32)
    offset = (i[None, :] - middle[:, None]) * float(spacing_i)
    offset[total == 0] = np.nan
    return offset.astype(np.float32)
