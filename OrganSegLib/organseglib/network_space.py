"""How a CT enters the network's space and how labels leave it: the one door (paper section V).

Segmentation (``organseglib.segment``), training data (``organseglib.training.dataset``) and
validation (``organseglib.training.validation``, through ``organseglib.inference``) all go through
this module, so what the network sees in training and in use cannot drift apart.

Entering (``enter_network_space``), in this order:

1. **resample** to the network's spacing (``NETWORK_SPACING_MM``, 3 mm, paper V-A: Gaussian
   anti-alias then linear; ``organseglib.resample``). The new grid keeps the CT's direction and the
   centre of its field of view and covers all of it. A CT already on that grid (e.g. a 3 mm scan) is
   copied, not resampled;
2. **reorient** to the network's axis order (the model card's ``orientation``, ``NETWORK_ORIENTATION``
   for networks trained here): exact axis permutations and flips (``organseglib.orientation``), so a
   RAS-ordered NIfTI and an LPS-ordered DICOM series of one patient give the network one array;
3. **crop** to the body's bounding box plus a margin (optional; the table and the air around the
   patient go). ``body`` is either a mask on the CT's grid (e.g. ``organseglib.body.body_masks(...).body``)
   or a function finding it on the network grid (``find_body_on_network_grid``: cheap at 3 mm; what
   ``organseg segment`` uses with and without the auto-labelers, so both paths tile alike).

The returned ``NetworkSpace`` records the three steps and brings labels back out
(``labels_to_native``: uncrop with background, undo the reorientation, nearest neighbour onto the
native voxels, voxel centres aligned) and takes labels in (``labels_to_network``, for training).

>>> import numpy as np
>>> from organseglib.volume import Volume
>>> ct = Volume.from_geometry(np.full((8, 6, 6), -1000.0, np.float32), spacing=(1.5, 1.5, 1.5))  # RAS order
>>> image, space = enter_network_space(ct, spacing_mm=3.0)
>>> image.shape, space.orientation
((4, 3, 3), 'LPS')
>>> back = space.labels_to_native(np.ones(image.shape, np.uint8))
>>> back.same_grid(ct), int(back.array.sum()) == ct.array.size
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import numpy as np

from .boxes import Box, mask_bounding_box
from .ct_checks import AIR_HU
from .errors import GeometryError, InputError
from .orientation import DEFAULT_AXIS_CODE, Reorientation, check_axis_code, reorient
from .volume import Grid, Volume

if TYPE_CHECKING:  # resample (scipy) is imported when a CT enters: reading a model card needs no scipy
    from .resample import GridMapping

NETWORK_SPACING_MM = 3.0  # paper, section V-A: every CT is resampled to 3 mm isotropic voxels
NETWORK_ORIENTATION = DEFAULT_AXIS_CODE  # axis order of the arrays the networks trained here see
# The left-right axis of the network arrays (K, J, I): array axis 2 - n holds code letter n.
LEFT_RIGHT_AXIS = 2 - next(n for n, letter in enumerate(NETWORK_ORIENTATION) if letter in "LR")
BODY_MARGIN_MM = 6.0  # margin kept around the body's bounding box (project's choice: two 3 mm voxels)

BodyFinder = Callable[[Volume], np.ndarray]  # CT on the (uncropped) network grid -> body mask there


@dataclass(frozen=True)
class NetworkSpace:
    """The trip of one CT into the network's grid, and the way back.

    Attributes:
        mapping: the CT's native grid and the resampled grid (CT's axis order, uncropped).
        reorientation: from the resampled grid to the network's axis order (exact).
        orientation: that axis order's code (e.g. ``"LPS"``).
        uncropped: the reoriented network grid before the crop.
        box: the crop of ``uncropped`` that the network sees.
        grid: the network's grid (reoriented, cropped): what ``enter_network_space``'s image lies on.
    """

    mapping: GridMapping
    reorientation: Reorientation
    orientation: str
    uncropped: Grid
    box: Box
    grid: Grid

    @property
    def native(self) -> Grid:
        """The CT's own grid."""
        return self.mapping.native

    def labels_to_native(self, labels: Union[np.ndarray, Volume]) -> Volume:
        """Labels on the network grid (``grid``; an array of its shape or a Volume on it) as a label
        Volume on the CT's native grid: background outside the crop, the axis order undone, nearest
        neighbour onto the native voxel centres.

        Raises:
            GeometryError: the labels are not on the network grid.
        """
        if isinstance(labels, Volume):
            self.grid.require_same_grid(labels, what="labels on the network grid")
            labels = labels.array
        labels = np.asarray(labels)
        if labels.shape != self.grid.shape:
            raise GeometryError(f"labels on the network grid must have its shape {self.grid.shape}; got {labels.shape}")
        full = self.uncropped
        whole = np.zeros(full.shape, dtype=labels.dtype)
        whole[self.box] = labels
        resampled = self.reorientation(Volume(whole, full.ijk_to_ras))
        return self.mapping.labels_to_native(resampled)

    def native_index_vectors(self) -> Optional[tuple[tuple[int, np.ndarray], ...]]:
        """Per native array axis ``m``: ``(network array axis, index vector)``, the network voxel (an index
        along that axis of ``grid``, -1 outside the crop) whose label ``labels_to_native`` puts on each
        native voxel along ``m``: the same nearest-neighbour map, as three vectors, for reading network
        arrays (probabilities) at native voxels of a box without mapping whole volumes. None when the
        map is not separable (a network grid oblique to the CT's, which ``enter_network_space`` does not
        make)."""
        from .resample import _axis_aligned, _index_map, nearest_index

        net = self.mapping.network
        n_net = net.shape
        if self.mapping.identity:
            resampled = [np.arange(n) for n in n_net]
        else:
            matrix = np.array(net.ijk_to_ras, dtype=np.float64)
            matrix[:3, 3] -= matrix[:3, :3] @ np.ones(3)  # as labels_to_native: padded by one voxel
            padded = Grid(tuple(n + 2 for n in n_net), matrix)
            scale, offset = _index_map(padded, self.native)
            if not _axis_aligned(scale):
                return None
            resampled = []
            for axis, (n, m) in enumerate(zip(n_net, self.native.shape)):
                q = nearest_index(n + 2, float(scale[axis, axis]), float(offset[axis]), m)
                resampled.append(np.where(q >= n + 2, -1, np.clip(q - 1, 0, n - 1)))
        # resampled axis m holds oriented (network) axis ``o``, flipped or not (Reorientation.__call__)
        r = self.reorientation
        held = [2 - r.source[2 - n] for n in range(3)]
        out = []
        for m, o in enumerate(np.argsort(held)):
            o = int(o)
            v = resampled[m]
            size = self.uncropped.shape[o]
            w = np.where(v < 0, -1, (size - 1 - v) if r.flip[2 - o] else v)
            w = np.where(w < 0, -1, w - self.box[o].start)
            w = np.where((w >= 0) & (w < self.grid.shape[o]), w, -1)
            out.append((o, w.astype(np.intp)))
        return tuple(out)

    def labels_to_network(self, labels: Volume) -> np.ndarray:
        """Labels on the CT's native grid as an array on the network grid (nearest neighbour,
        reoriented, cropped): how training labels enter with their CT.

        Raises:
            GeometryError: the labels are not on the CT's grid.
        """
        resampled = self.mapping.labels_to_network(labels)
        oriented, _ = reorient(resampled, self.orientation)
        return np.ascontiguousarray(oriented.array[self.box])


def body_box(body: Volume, mapping: GridMapping, orientation: str, margin_mm: float) -> Optional[Box]:
    """The box of the reoriented network grid holding the ``body`` mask (on the native grid) plus
    ``margin_mm``; None when the mask is empty."""
    on_network = mapping.labels_to_network(body.with_array(np.asarray(body.array, dtype=np.uint8)))
    oriented, _ = reorient(on_network, orientation)
    return _box_with_margin(oriented.array != 0, oriented.array_spacing, margin_mm)


def _box_with_margin(mask: np.ndarray, spacing: Sequence[float], margin_mm: float) -> Optional[Box]:
    margin = tuple(int(np.ceil(float(margin_mm) / s)) for s in spacing)
    return mask_bounding_box(mask, margin)


def find_body_on_network_grid(ct: Volume) -> np.ndarray:
    """The body mask of a CT on the network grid (``organseglib.body``), on a working grid of twice
    the spacing (at least 6 mm, at most 10 mm): plenty for a bounding box, and cheap."""
    from .body import BodyParams, body_masks

    coarse = min(max(6.0, 2.0 * max(ct.array_spacing)), 10.0)
    return body_masks(np.asarray(ct.array, dtype=np.float32), ct.array_spacing, BodyParams(coarse_mm=coarse)).body


def enter_network_space(ct: Volume, spacing_mm: Union[float, Sequence[float]] = NETWORK_SPACING_MM,
                        orientation: str = NETWORK_ORIENTATION,
                        body: Optional[Union[Volume, np.ndarray, BodyFinder]] = None,
                        margin_mm: float = BODY_MARGIN_MM, fill_hu: float = AIR_HU,
                        device: Optional[Any] = None) -> tuple[np.ndarray, NetworkSpace]:
    """Take a CT into the network's space: resample, reorient, crop (see the module doc).

    Args:
        ct: CT in HU on its native grid.
        spacing_mm: the network's spacing (one number, or i, j, k), e.g. ``card.spacing_mm``.
        orientation: the network's axis order, e.g. ``card.orientation``.
        body: where the patient is, to crop to: a mask (non-zero) on the CT's grid, or a function
            finding it on the network grid (e.g. ``find_body_on_network_grid``); None: no crop.
        margin_mm: margin around the body's box, mm.
        fill_hu: value of network voxels outside the CT's field of view (air).
        device: a torch device for the resampling's matrix products; None: numpy.

    Returns:
        ``(image, space)``: the float32 HU array ``[K, J, I]`` on ``space.grid``, and the space.

    Raises:
        InputError: bad spacing, orientation or margin; GeometryError: a body mask on another grid.
    """
    from .resample import resample_ct

    code = check_axis_code(orientation)
    if not float(margin_mm) >= 0:
        raise InputError(f"margin_mm must be ≥ 0 mm; got {margin_mm!r}")
    if body is not None and not callable(body):
        body = body if isinstance(body, Volume) else ct.with_array(np.asarray(body))
        ct.require_same_grid(body, what="body mask")
    resampled, mapping = resample_ct(ct, spacing_mm, fill_hu=fill_hu, device=device)
    oriented, back = reorient(resampled, code)
    if body is None:
        box = None
    elif callable(body):
        box = _box_with_margin(np.asarray(body(oriented)) != 0, oriented.array_spacing, margin_mm)
    else:
        box = body_box(body, mapping, code, margin_mm)
    if box is None:  # not cropping, or no body found: the whole grid
        box = tuple(slice(0, n) for n in oriented.shape)  # type: ignore[assignment]
    space = NetworkSpace(mapping, back, code, oriented.grid, box, oriented.grid.cropped(box))
    return np.ascontiguousarray(oriented.array[box], dtype=np.float32), space


def enter_for_card(ct: Volume, card, **kwargs) -> tuple[np.ndarray, NetworkSpace]:
    """``enter_network_space`` at a model card's spacing and axis order (``card.spacing_mm``,
    ``card.orientation``); other arguments as there."""
    return enter_network_space(ct, card.spacing_mm, card.orientation, **kwargs)


__all__ = ["BODY_MARGIN_MM", "BodyFinder", "NETWORK_ORIENTATION", "NETWORK_SPACING_MM", "NetworkSpace", "body_box",
           "enter_for_card", "enter_network_space", "find_body_on_network_grid"]
