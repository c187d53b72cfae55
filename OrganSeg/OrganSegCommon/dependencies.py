"""First use: install the Python packages OrganSeg needs, after one confirmation.

Where ``slicer.packaging`` exists (Slicer >= 5.12) its ``pip_ensure`` checks, asks, installs and offers a restart; on
older Slicer we check with ``importlib.metadata``, ask with ``slicer.util.confirmOkCancelDisplay`` and
install with ``slicer.util.pip_install(str)`` (its only signature before 5.12). Slicer's own numpy and
SimpleITK are never replaced (a constraints file pins the installed versions); torch comes from the
PyTorch extension's installer (``PyTorchUtils``), which picks the CUDA build matching the driver.
The ``slicer`` module is passed in so the decisions are unit-tested without Slicer.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence

log = logging.getLogger(__name__)

# Packages Slicer ships and we must never upgrade or replace (or that come from elsewhere); they are
# left out of Resources/requirements.txt (generated from the pyproject files by scripts/sync_requirements.py).
NEVER_REPLACE = ("numpy", "SimpleITK", "vtk", "torch")
# Slicer ships these too (its DICOM module uses them); they stay in requirements.txt for a Python
# without them, but when installed they are pinned so that installing another package never replaces them.
PIN_WHEN_INSTALLED = ("numpy", "SimpleITK", "pydicom", "pillow")
TORCH_REQUIREMENT = ">=2.1"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def read_requirements(path: str) -> List[str]:
    """Requirement lines of a requirements.txt (comments and blanks dropped)."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            lines.append(text)
    return lines


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"cannot read a package name from requirement {requirement!r}")
    return match.group(1)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_applies(requirement: str) -> bool:
    """Whether a requirement's environment marker (``pkg>=1; python_version >= '3.10'``) holds for
    this Python; a requirement without one always applies."""
    if ";" not in requirement:
        return True
    try:
        from packaging.markers import InvalidMarker, Marker
    except ImportError:  # no way to evaluate it here: let pip decide
        return True
    try:
        return bool(Marker(requirement.split(";", 1)[1].strip()).evaluate())
    except InvalidMarker:
        raise ValueError(f"requirement {requirement!r} has an invalid environment marker") from None


def missing_requirements(requirements: Sequence[str],
                         version_of: Callable[[str], Optional[str]] = None) -> List[str]:
    """Requirements for this Python whose distribution is not installed, without their markers
    (version ranges are not re-checked: an installed package is kept, so Slicer's own copies are
    never replaced)."""
    version_of = version_of or installed_version
    never = {_normal(n) for n in NEVER_REPLACE}
    return [r.split(";", 1)[0].strip() for r in requirements
            if requirement_applies(r) and _normal(requirement_name(r)) not in never
            and version_of(requirement_name(r)) is None]


def installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def packaging_module(slicer_module):
    """``slicer.packaging`` (new in Slicer 5.12.0) or None on older Slicer: feature detection,
    not version arithmetic."""
    found = getattr(slicer_module, "packaging", None)
    if found is not None:
        return found
    try:
        import importlib

        return importlib.import_module(f"{slicer_module.__name__}.packaging")
    except ImportError:
        return None


def constraints_file(version_of: Callable[[str], Optional[str]] = None) -> str:
    """A pip constraints file pinning the installed numpy, SimpleITK, pydicom and pillow."""
    version_of = version_of or installed_version
    pins = [f"{name}=={version_of(name)}" for name in PIN_WHEN_INSTALLED if version_of(name)]
    handle = tempfile.NamedTemporaryFile("w", suffix="-organseg-constraints.txt", delete=False)
    with handle:
        handle.write("\n".join(pins) + "\n")
    return handle.name


def ensure_python_packages(slicer_module, requirements_path: str, confirm: bool = True) -> List[str]:
    """Install missing requirements after one confirmation; returns what was (asked to be) installed.

    Raises:
        RuntimeError: the user declined (the workflow cannot run without them).
    """
    requirements = read_requirements(requirements_path)
    missing = missing_requirements(requirements)
    if not missing:
        return []
    packaging = packaging_module(slicer_module)
    if packaging is not None:  # Slicer >= 5.12
        # pip_ensure checks again, asks once, installs, and offers a restart when needed.
        packaging.pip_ensure(packaging.load_requirements(requirements_path),
                             skip_packages=list(NEVER_REPLACE), prompt_install=confirm)
        return missing
    if confirm and not slicer_module.util.confirmOkCancelDisplay(
            "OrganSeg needs these Python packages, which will now be downloaded and installed:\n\n"
            + "\n".join(missing), windowTitle="OrganSeg: install Python packages"):
        raise RuntimeError("OrganSeg cannot run without " + ", ".join(missing) + " (installation declined)")
    slicer_module.util.pip_install(" ".join(missing) + f" -c {constraints_file()}")
    return missing


def torch_installed(version_of: Callable[[str], Optional[str]] = None) -> bool:
    return (version_of or installed_version)("torch") is not None


def ensure_torch(confirm: bool = True) -> None:
    """Install PyTorch through the PyTorch extension when it is missing (needed to segment and
    retrain; the child process imports it, the GUI process does not).

    Raises:
        RuntimeError: the PyTorch extension is not installed, or installation was declined.
    """
    if torch_installed():
        return
    try:
        import PyTorchUtils  # the SlicerPyTorch extension, a dependency of OrganSeg
    except ImportError:
        raise RuntimeError("PyTorch is missing and the PyTorch extension is not installed: install the "
                           "'PyTorch' extension from the Extensions Manager and restart Slicer") from None
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=confirm,
                                                          torchVersionRequirement=TORCH_REQUIREMENT)
    if torch is None:
        raise RuntimeError("OrganSeg needs PyTorch to segment and retrain (installation declined)")
