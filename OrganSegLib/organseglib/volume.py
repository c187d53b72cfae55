"""The one type that flows through OrganSeg: a 3D array on a grid in RAS space.

``Grid`` is the geometry alone: the array shape ``(K, J, I)`` and the 4x4 matrix ``ijk_to_ras`` taking
homogeneous voxel indices ``(i, j, k, 1)`` to RAS millimetres, as Slicer's ``GetIJKToRASMatrix``.
``Volume`` is a grid plus its voxels: ``Volume.array`` is indexed ``[k, j, i]`` (slice, row, column),
the order ``slicer.util.arrayFromVolume`` returns, and ``Volume.grid`` is its ``Grid``. Spacing,
origin and direction are derived from the matrix and never stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import GeometryError


_AXIS_LETTERS = {(0, 1): "R", (0, -1): "L", (1, 1): "A", (1, -1): "P", (2, 1): "S", (2, -1): "I"}


def axis_code(direction: np.ndarray) -> str:
    """The letters of the world directions closest to the ``i``, ``j`` and ``k`` axes of a 3x3 direction
    matrix (columns: the unit RAS directions of i, j, k), e.g. ``"RAS"``."""
    d = np.asarray(direction)
    letters = []
    for s in range(3):
        row = int(np.argmax(np.abs(d[:, s])))
        letters.append(_AXIS_LETTERS[(row, int(np.sign(d[row, s])))])
    return "".join(letters)


def _checked_matrix(ijk_to_ras) -> np.ndarray:
    matrix = np.asarray(ijk_to_ras, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise GeometryError(f"ijk_to_ras must be a finite 4x4 matrix; got {matrix!r}")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise GeometryError(f"ijk_to_ras must be affine (last row 0 0 0 1); got row {matrix[3]!r}")
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise GeometryError(
            f"voxel spacing must be positive on every axis; got {tuple(spacing)} mm. "
            "Fix the file header (pixdim / space directions) or pass the real spacing."
        )
    matrix = matrix.copy()
    matrix.setflags(write=False)
    return matrix


@dataclass(frozen=True, eq=False)
class Grid:
    """Where the voxels of a 3D array lie: its shape ``(K, J, I)`` and its IJK→RAS matrix.

    Args:
        shape: array shape ``(K, J, I)`` (three positive sizes).
        ijk_to_ras: 4x4 affine from ``(i, j, k, 1)`` to RAS mm; its 3x3 part must be invertible.

    Raises:
        GeometryError: not three positive sizes, or the matrix is not a finite invertible affine.
    """

    shape: tuple[int, int, int]
    ijk_to_ras: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or any(n < 1 for n in shape):
            raise GeometryError(f"a grid needs three positive sizes (K, J, I); got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "ijk_to_ras", _checked_matrix(self.ijk_to_ras))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm in (i, j, k) order, as Slicer's ``GetSpacing``."""
        return tuple(float(s) for s in np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def array_spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the array axes, (k, j, i) order: use with numpy/scipy."""
        return self.spacing[::-1]

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS position in mm of the centre of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.ijk_to_ras[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of the i, j and k axes."""
        return self.ijk_to_ras[:3, :3] / np.asarray(self.spacing)[None, :]

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        """Map an (N, 3) array of (i, j, k) indices to (N, 3) RAS mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def cropped(self, box: Sequence[slice]) -> "Grid":
        """The grid of ``array[box]`` (``box``: one slice per array axis, step 1, within the grid)."""
        starts = [0 if s.start is None else int(s.start) for s in box]
        stops = [n if s.stop is None else int(s.stop) for s, n in zip(box, self.shape)]
        if len(starts) != 3 or any(not 0 <= a < b <= n for a, b, n in zip(starts, stops, self.shape)):
            raise GeometryError(f"crop box {tuple(box)!r} does not lie inside the grid of shape {self.shape}")
        matrix = np.array(self.ijk_to_ras, dtype=np.float64)
        matrix[:3, 3] += matrix[:3, :3] @ np.asarray(starts[::-1], dtype=np.float64)  # (i, j, k) of the corner
        return Grid(tuple(b - a for a, b in zip(starts, stops)), matrix)  # type: ignore[arg-type]

    def same_grid(self, other, atol: float = 1e-4) -> bool:
        """True when ``other`` (a Grid or a Volume) has the same shape and (to ``atol`` mm) the same matrix."""
        return tuple(self.shape) == tuple(other.shape) and np.allclose(self.ijk_to_ras, other.ijk_to_ras, atol=atol)

    def require_same_grid(self, other, what: str = "labels") -> None:
        """Raise GeometryError unless ``other`` lies on this grid (``same_grid``); the message names only
        what differs (shape, spacing, origin, direction), ``other``'s value first."""
        if self.same_grid(other):
            return
        def rounded(values, digits):
            return tuple(round(float(v), digits) for v in values)

        differs = []
        if tuple(other.shape) != tuple(self.shape):
            differs.append(f"shape {tuple(other.shape)} vs {tuple(self.shape)}")
        if not np.allclose(other.spacing, self.spacing, atol=1e-4):
            differs.append(f"spacing {rounded(other.spacing, 4)} vs {rounded(self.spacing, 4)} mm")
        if not np.allclose(other.origin, self.origin, atol=1e-4):
            differs.append(f"origin {rounded(other.origin, 3)} vs {rounded(self.origin, 3)} mm")
        if not np.allclose(other.direction, self.direction, atol=1e-4):
            codes = (axis_code(other.direction), axis_code(self.direction))
            differs.append(f"direction {codes[0]} vs {codes[1]} axes" if codes[0] != codes[1] else
                           f"direction {np.round(other.direction, 4).tolist()} vs {np.round(self.direction, 4).tolist()}")
        only = len(differs) == 1 and differs[0].startswith("direction")
        found = (f"only the direction differs ({differs[0][len('direction '):]}); shape, spacing and origin agree"
                 if only else "; ".join(differs) or "the voxel-to-RAS matrices differ")
        raise GeometryError(
            f"{what} are not on the CT's grid: {found}. "
            "Resample them onto the CT first (organseglib.resample.resample_labels_to_grid)"
            + (", or write them with the CT's axes" if only else "") + "."
        )

    def __repr__(self) -> str:
        return (f"Grid(shape={self.shape}, spacing={tuple(round(s, 4) for s in self.spacing)}, "
                f"origin={tuple(round(o, 3) for o in self.origin)})")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image or label map with its voxel-to-RAS geometry: a ``Grid`` plus an array.

    Args:
        array: 3D array indexed ``[k, j, i]``.
        ijk_to_ras: 4x4 affine from ``(i, j, k, 1)`` to RAS mm; its 3x3 part must be invertible.

    Raises:
        GeometryError: the array is not 3D, or the matrix is not a finite invertible affine.
    """

    array: np.ndarray
    ijk_to_ras: np.ndarray

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise GeometryError(
                f"a Volume needs a 3D array indexed [k, j, i]; got {array.ndim}D with shape "
                f"{array.shape}. Squeeze singleton axes of 4D images or stack 2D slices first."
            )
        matrix = _checked_matrix(self.ijk_to_ras)
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "ijk_to_ras", matrix)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def on_grid(cls, array: np.ndarray, grid: Grid) -> "Volume":
        """``array`` on ``grid`` (shapes must agree)."""
        array = np.asarray(array)
        if array.shape != grid.shape:
            raise GeometryError(f"array shape {array.shape} differs from the grid shape {grid.shape}")
        return cls(array, grid.ijk_to_ras)

    @classmethod
    def from_geometry(
        cls,
        array: np.ndarray,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        direction: np.ndarray | None = None,
    ) -> "Volume":
        """Build from Slicer-style geometry: spacing and origin in (i, j, k) / RAS order,
        direction a 3x3 matrix whose columns are the unit RAS directions of i, j and k."""
        spacing = np.asarray(spacing, dtype=np.float64)
        if spacing.shape != (3,) or np.any(~np.isfinite(spacing)) or np.any(spacing <= 0):
            raise GeometryError(
                f"spacing must be three positive numbers in mm (i, j, k order); got {tuple(spacing)!r}"
            )
        direction = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
        matrix = np.eye(4)
        matrix[:3, :3] = direction * spacing[None, :]
        matrix[:3, 3] = np.asarray(origin, dtype=np.float64)
        return cls(np.asarray(array), matrix)

    def with_array(self, array: np.ndarray) -> "Volume":
        """Same grid, new voxels (e.g. a label map for this CT)."""
        array = np.asarray(array)
        if array.shape != self.shape:
            raise GeometryError(f"array shape {array.shape} differs from the grid shape {self.shape}")
        return Volume(array, self.ijk_to_ras)

    # --- derived geometry (the grid's) --------------------------------------------------------
    @property
    def grid(self) -> Grid:
        """The voxels' geometry without the voxels."""
        return Grid(self.array.shape, self.ijk_to_ras)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(K, J, I)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    spacing = Grid.spacing
    array_spacing = Grid.array_spacing
    origin = Grid.origin
    direction = Grid.direction
    ras_to_ijk = Grid.ras_to_ijk
    ijk_to_ras_points = Grid.ijk_to_ras_points
    same_grid = Grid.same_grid
    require_same_grid = Grid.require_same_grid

    def __repr__(self) -> str:
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing="
            f"{tuple(round(s, 4) for s in self.spacing)}, origin={tuple(round(o, 3) for o in self.origin)})"
        )


__all__ = ["Grid", "Volume", "axis_code"]
