"""PNG overlays of label maps on CT: axial, coronal and sagittal slices side by side.

Slices are drawn in physical proportions (pixel aspect from the spacing) and in the radiological
convention whatever axis order the file stores (the arrays are first put in LPS order, exactly, by
``organseglib.orientation``): axial with anterior up and the patient's right on the image's left,
coronal and sagittal with superior up, sagittal with anterior on the left. Organ colours come from the
organ table. Used by ``organseg demo``,
tests and reviews: look at what the code makes.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

from .atomic import atomic_path
from .organs import organ_table
from .volume import Volume

PathLike = Union[str, "os.PathLike[str]"]


def _palette() -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.float32)
    for organ in organ_table():
        lut[organ.value] = organ.color
    return lut


def _windowed(ct: np.ndarray, level: float, width: float) -> np.ndarray:
    return np.clip((ct - (level - width / 2.0)) / width, 0.0, 1.0)


def _blend(gray: np.ndarray, labels: Optional[np.ndarray], alpha: float) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if labels is not None:
        colour = _palette()[labels]
        on = (labels > 0)[..., None]
        rgb = np.where(on, (1 - alpha) * rgb + alpha * colour, rgb)
    return rgb


def _display_grid(ct: Volume, labels: Optional[Volume], index: Optional[Sequence[int]]):
    """``ct`` and ``labels`` in LPS array order, and ``index`` (k, j, i of the original grid) on it."""
    from .orientation import DEFAULT_AXIS_CODE, reorient

    if labels is not None:
        ct.require_same_grid(labels)
    shown, record = reorient(ct, DEFAULT_AXIS_CODE)
    shown_labels = None if labels is None else reorient(labels, DEFAULT_AXIS_CODE)[0]
    if index is not None:
        # new array axis n holds ijk axis a = 2 - n, i.e. original array axis 2 - source[a]
        moved = []
        for n in range(3):
            a = 2 - n
            value = int(index[2 - record.source[a]])
            moved.append(shown.shape[n] - 1 - value if record.flip[a] else value)
        index = moved
    return shown, shown_labels, index


def overlay_views(ct: Volume, labels: Optional[Volume] = None, index: Optional[Sequence[int]] = None,
                  level: float = 40.0, width: float = 400.0, alpha: float = 0.45):
    """Return three RGB float images (axial, coronal, sagittal) through voxel ``index`` (k, j, i of
    ``ct``'s grid); by default through the centre of the labelled region (or of the volume)."""
    ct, labels, index = _display_grid(ct, labels, index)
    arr = ct.array.astype(np.float32)
    lab = None if labels is None else labels.array
    if index is None:
        if lab is not None and np.any(lab):
            index = [int(np.median(ax)) for ax in np.nonzero(lab)]
        else:
            index = [n // 2 for n in arr.shape]
    k, j, i = index
    gray = _windowed(arr, level, width)
    pick = (lambda a, s: None if a is None else a[s])
    # axial: rows j, cols i; coronal: rows k (flipped so superior is up), cols i; sagittal: rows k, cols j
    axial = _blend(gray[k], pick(lab, np.s_[k]), alpha)
    coronal = _blend(gray[:, j, :][::-1], None if lab is None else lab[:, j, :][::-1], alpha)
    sagittal = _blend(gray[:, :, i][::-1], None if lab is None else lab[:, :, i][::-1], alpha)
    return axial, coronal, sagittal


def save_overlay_png(path: PathLike, ct: Volume, labels: Optional[Volume] = None, title: str = "",
                     index: Optional[Sequence[int]] = None, **kwargs) -> None:
    """Write axial, coronal and sagittal overlays with a colour legend to ``path`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    si, sj, sk = _display_grid(ct, None, None)[0].spacing
    views = overlay_views(ct, labels, index, **kwargs)
    aspects = [sj / si, sk / si, sk / sj]
    names = ["axial", "coronal", "sagittal"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), dpi=90)
    for ax, img, aspect, name in zip(axes, views, aspects, names):
        ax.imshow(img, aspect=aspect, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    if labels is not None:
        present = set(np.unique(labels.array).tolist())
        handles = [Patch(color=o.color, label=f"{o.value} {o.name}") for o in organ_table() if o.value in present]
        if handles:
            fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
