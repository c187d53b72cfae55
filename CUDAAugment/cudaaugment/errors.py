"""Exceptions raised by cudaaugment.

Messages name the parameter, the rule it broke, the value found (``got {x!r}``) and the fix.
Each class also derives from the built-in exception a caller would expect.
"""

from __future__ import annotations


class AugmentError(ValueError):
    """A configuration, parameter set or input array breaks a documented rule."""


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (package or GPU missing)."""
