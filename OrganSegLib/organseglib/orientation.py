"""Exact reorientation of a volume's array to a named axis order (no interpolation).

A network learns the anatomy in array order: if the training scans' arrays run right → left along
``i`` and a scan at inference runs left → right, the network sees a mirrored patient. Files store
either order (NIfTI is commonly RAS-ordered, DICOM and this project's phantoms LPS-ordered), so the
network grid is put into one named axis order before the network sees it, and the labels are put
back afterwards. Only axis permutations and flips are used: every voxel keeps its value and its
world position, and the undo is exact.

Axis codes name, for ``i``, ``j`` and ``k``, the direction in which the index grows: ``L``/``R``,
``P``/``A``, ``S``/``I`` (``"LPS"``: ``i`` towards the patient's left, ``j`` posterior, ``k``
superior, DICOM's and the phantoms' order).

>>> import numpy as np
>>> from organseglib.volume import Volume
>>> ras = Volume(np.arange(24.0).reshape(2, 3, 4), np.diag([2.0, 2.0, 3.0, 1.0]))   # i → R, j → A
>>> axis_codes(ras)
'RAS'
>>> lps, undo = reorient(ras, "LPS")
>>> axis_codes(lps), bool(lps.array[0, 0, 0] == ras.array[0, 2, 3]), undo(lps).same_grid(ras)
('LPS', True, True)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .errors import GeometryError, InputError
from .volume import Volume, axis_code

# The axis order this project works in: DICOM's and the phantoms', the auto-labelers' (axial slices
# along array axis 0, anterior/posterior along axis 1), the overlays', and the networks' trained here
# (``network_space.NETWORK_ORIENTATION``). The one place the string "LPS" is written.
DEFAULT_AXIS_CODE = "LPS"

_LETTERS = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}


def _code_vectors(code: str) -> np.ndarray:
    """Rows: the unit RAS vector of each letter of ``code``."""
    text = str(code).upper()
    if len(text) != 3 or any(c not in _LETTERS for c in text) or len({_LETTERS[c][0] for c in text}) != 3:
        raise InputError(f"axis code must be three letters naming one of L/R, P/A and S/I each (e.g. 'LPS'); "
                         f"got {code!r}")
    out = np.zeros((3, 3))
    for row, c in enumerate(text):
        axis, sign = _LETTERS[c]
        out[row, axis] = sign
    return out


def check_axis_code(code: str) -> str:
    """``code`` in upper case after checking it names one of L/R, P/A and S/I each.

    Raises:
        InputError: anything else.
    """
    _code_vectors(code)
    return str(code).upper()


def axis_codes(volume: Volume) -> str:
    """The letters of the world directions closest to the ``i``, ``j`` and ``k`` axes (e.g. ``"RAS"``)."""
    return axis_code(volume.direction)


@dataclass(frozen=True)
class Reorientation:
    """How ``reorient`` rearranged the array, and the grid to go back to.

    ``source[a]`` is the original ijk axis that became ijk axis ``a``; ``flip[a]`` says it was reversed.
    Calling the record on a volume on the reoriented grid returns it on the original grid.
    """

    source: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    original_matrix: np.ndarray  # ijk_to_ras of the original grid
    target_matrix: np.ndarray

    def __call__(self, volume: Volume) -> Volume:
        if not np.allclose(volume.ijk_to_ras, self.target_matrix, atol=1e-4):
            raise GeometryError("the volume to put back is not on the reoriented grid it came from")
        arr = np.asarray(volume.array)
        arr = arr[tuple(slice(None, None, -1) if self.flip[2 - n] else slice(None) for n in range(3))]
        # array axis n of the reoriented array holds ijk axis a = 2 - n, i.e. original ijk axis source[a]
        held = [2 - self.source[2 - n] for n in range(3)]  # original array axis held by each new array axis
        arr = np.transpose(arr, np.argsort(held))
        return Volume(np.ascontiguousarray(arr), self.original_matrix)


def reorient(volume: Volume, code: str = DEFAULT_AXIS_CODE) -> tuple[Volume, Reorientation]:
    """``volume`` with its array permuted and flipped so that ``i``, ``j``, ``k`` point as close as
    possible to ``code``'s directions; same voxels, same world positions.

    Returns:
        (reoriented volume, the record that puts a volume on the new grid back on the original one).

    Raises:
        InputError: an invalid ``code``.
    """
    targets = _code_vectors(code)
    d = volume.direction
    dots = targets @ d  # [target axis a, source ijk axis s]
    source = max(itertools.permutations(range(3)), key=lambda p: sum(abs(dots[a, p[a]]) for a in range(3)))
    flip = tuple(bool(dots[a, source[a]] < 0) for a in range(3))
    m = np.asarray(volume.ijk_to_ras, dtype=np.float64)
    sizes_ijk = volume.array.shape[::-1]
    matrix = np.eye(4)
    matrix[:3, 3] = m[:3, 3]
    for a in range(3):
        column = m[:3, source[a]]
        matrix[:3, a] = -column if flip[a] else column
        if flip[a]:
            matrix[:3, 3] += column * (sizes_ijk[source[a]] - 1)
    # new array axis n holds ijk axis 2 - n, i.e. original ijk axis source[2 - n] = array axis 2 - source[2 - n]
    arr = np.transpose(np.asarray(volume.array), [2 - source[2 - n] for n in range(3)])
    arr = arr[tuple(slice(None, None, -1) if flip[2 - n] else slice(None) for n in range(3))]
    out = Volume(np.ascontiguousarray(arr), matrix)
    return out, Reorientation(tuple(source), flip, m.copy(), matrix)  # type: ignore[arg-type]


__all__ = ["DEFAULT_AXIS_CODE", "Reorientation", "axis_codes", "check_axis_code", "reorient"]
