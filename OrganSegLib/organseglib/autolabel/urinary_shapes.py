"""Shape tests the urinary rules share (``urinary``, ``urinary_bladder``): where a piece lies in the
body, growing and closing block masks, the thick cores of a mask with their cortical shell, and the
record of each candidate judged."""

from __future__ import annotations

import cc3d
import numpy as np
import scipy.ndimage as ndi

from .. import morphology
from .coarse_ct import CoarseCT

def centre_frame(coarse: CoarseCT, body: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """Median depth (0 front .. 1 back) and absolute offset from the midline (mm) of coarse ``points``."""
    depth, offset = coarse.frame(body)
    d = depth[points[:, 0], points[:, 1]]
    o = offset[points[:, 0], points[:, 2]]
    return float(np.nanmedian(d)) if np.isfinite(d).any() else np.nan, \
        float(np.nanmedian(np.abs(o))) if np.isfinite(o).any() else np.nan


IN_PLANE = ndi.generate_binary_structure(3, 1) * np.array([0, 1, 0], bool)[:, None, None]  # 4-connected, per slice


def grow(mask: np.ndarray, steps: int) -> np.ndarray:
    return ndi.binary_dilation(mask, iterations=steps) if steps > 0 else mask


def in_plane_closing(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Per axial slice: closing by a disc of ``radius_mm``, then the holes filled."""
    ry, rx = (max(1, int(round(radius_mm / float(s)))) for s in spacing[1:])
    yy, xx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    disc = ((yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0)[None]
    padded = np.pad(mask, ((0, 0), (ry, ry), (rx, rx)))
    closed = ndi.binary_closing(padded, structure=disc)[:, ry:-ry, rx:-rx]
    return ndi.binary_fill_holes(closed | mask, structure=np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                                                                   [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                                   [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], bool)[1:2])


def thick_parts(mask: np.ndarray, radius_mm: float, coarse: CoarseCT, shell_hu: float, span_mm: float):
    """For each core of ``mask`` (what an erosion by ``radius_mm`` leaves, 26-connected): ``(box, core,
    region, median, enclosed)``: a box around it, the core and its thick region (the opening: the core
    grown back by the radius within ``mask``) in that box, the core's median block mean, and the share
    of the core that blocks ``shell_hu`` denser than that median (block maxima: cortex) enclose along
    two axes or three within ``span_mm`` (``morphology.enclosed_axes``): marrow inside its cortex."""
    cs, r = coarse.spacing, radius_mm
    step = max(cs)
    cores = morphology.erosion(mask, r, cs)
    labels, n = cc3d.connected_components(cores, connectivity=26, return_N=True)
    if n == 0:
        return
    stats = cc3d.statistics(labels)
    grow = [int(np.ceil((r + 2 * step + span_mm) / c)) + 1 for c in cs]
    for index in range(1, n + 1):
        box = stats["bounding_boxes"][index]
        big = tuple(slice(max(0, b.start - g), min(m, b.stop + g)) for b, g, m in zip(box, grow, cores.shape))
        core = labels[big] == index
        region = morphology.dilation(core, r, cs) & mask[big]
        median = float(np.median(coarse.mean[big][core]))
        cortex = (coarse.max[big] >= median + shell_hu) & ~core
        enclosed = float(np.mean(morphology.enclosed_axes(cortex, cs, span_mm, where=core)[core] >= 2))
        yield big, core, region, median, enclosed


def judge(item: dict, checks: list, found: list) -> None:
    """Record a candidate in ``found``: taken when every ``(ok, why)`` check passed, else the reasons."""
    failed = [why for ok, why in checks if not ok]
    item["taken"] = not failed
    if failed:
        item["why_not"] = failed
    found.append(item)


__all__ = ["IN_PLANE", "centre_frame", "grow", "in_plane_closing", "judge", "thick_parts"]
