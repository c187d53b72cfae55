"""The slow reference of the FFT / EDT morphology: scipy.ndimage with the library's border rules
(outside the image is background for dilation and foreground for erosion; see
``organseglib.morphology.operations``). A test helper, not shipped with the library."""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.ndimage as ndi


def reference(op: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``reference("closing")(mask, ball)``: scipy.ndimage with the library's border rules."""
    def dil(m, b):
        return ndi.binary_dilation(m, structure=b, border_value=0)

    def ero(m, b):
        return ndi.binary_erosion(m, structure=b, border_value=1)

    table = {
        "dilation": dil,
        "erosion": ero,
        "closing": lambda m, b: ero(dil(m, b), b),
        "opening": lambda m, b: dil(ero(m, b), b),
    }
    return table[op]
