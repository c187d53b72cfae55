"""JSON for reports that hold numpy values: ``json.dumps(report, default=jsonable)``."""

from __future__ import annotations

import numpy as np


def jsonable(value):
    """numpy scalars and arrays (the labelers' reports hold some) as plain JSON values; anything else
    as a float (``json.dumps`` calls this only for values it cannot write itself).

    Raises:
        TypeError: a value that is neither numpy nor a number (as ``json.dumps`` would).
    """
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON") from None
