"""Input checks shared by every backend (numpy, torch and cupy arrays alike)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .errors import AugmentError
from .params import AugmentParams


def dtype_kind(array: Any) -> str:
    """numpy-style dtype kind ('f', 'i', 'u', 'b', 'c', 'O', ...) of a numpy, cupy or torch array."""
    dtype = getattr(array, "dtype", None)
    kind = getattr(dtype, "kind", None)
    if isinstance(kind, str):
        return kind
    text = str(dtype)  # torch dtypes: "torch.float32", "torch.uint8", "torch.bool", ...
    if "bool" in text:
        return "b"
    if "complex" in text:
        return "c"
    if "float" in text or "half" in text:
        return "f"
    if "uint" in text:
        return "u"
    if "int" in text:
        return "i"
    return "O"


def check_image(image: Any, params: Optional[AugmentParams] = None, batched: bool = False) -> None:
    """Check an image volume (or batch) is a real-valued array of the right dimensionality.

    Raises:
        AugmentError: wrong type, dtype or dimensionality, or shape not ``params.in_shape``.
    """
    ndim = 4 if batched else 3
    what = "image batch (N, z, y, x)" if batched else "image volume (z, y, x)"
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        raise AugmentError(f"image must be an array ({what}); got {type(image).__name__}. "
                           "Pass a numpy array, torch tensor or cupy array.")
    if len(image.shape) != ndim:
        raise AugmentError(f"image must be a {ndim}D {what}; got shape {tuple(image.shape)!r}")
    if dtype_kind(image) not in "fiu":
        raise AugmentError(f"image must have a real numeric dtype (float or integer); got "
                           f"{image.dtype}. Convert with .astype(numpy.float32).")
    if params is not None and tuple(image.shape[-3:]) != params.in_shape:
        raise AugmentError(f"image shape {tuple(image.shape[-3:])!r} does not match the params' "
                           f"in_shape {params.in_shape!r}; draw params for this volume's shape")


def check_label(label: Any, image: Any, batched: bool = False) -> None:
    """Check a label map (or batch) is an integer array with the image's shape.

    Raises:
        AugmentError: wrong type, dtype or shape.
    """
    if not hasattr(label, "shape") or not hasattr(label, "dtype"):
        raise AugmentError(f"label must be an array; got {type(label).__name__}")
    kind = dtype_kind(label)
    if kind not in "iub":
        raise AugmentError(f"label must have an integer (or bool) dtype; got {label.dtype}. "
                           "Label maps hold class values; convert with .astype(numpy.uint8).")
    if tuple(label.shape) != tuple(image.shape):
        raise AugmentError(f"label shape {tuple(label.shape)!r} must equal the image shape "
                           f"{tuple(image.shape)!r}")


def check_params_list(params_list: Sequence[AugmentParams], count: int) -> None:
    """Check one AugmentParams per example, all with the same output shape.

    Raises:
        AugmentError: wrong count, wrong type, or differing output shapes.
    """
    if len(params_list) != count:
        raise AugmentError(f"need one AugmentParams per example: {count} examples, got "
                           f"{len(params_list)} params")
    for p in params_list:
        if not isinstance(p, AugmentParams):
            raise AugmentError(f"params must be AugmentParams (see sample_params); got "
                               f"{type(p).__name__}")
    shapes = {p.out_shape for p in params_list}
    if len(shapes) > 1:
        raise AugmentError(f"all params of a batch must share one out_shape; got {sorted(shapes)!r}")
