"""Which model packages the Segment panel offers: installed ones plus those retraining registered.

Installed packages come from ``organseglib.model_package.find_model_packages()`` (the bundled demo
model and any in the model folders it searches). Retrained packages are recorded in a small JSON
file (default ``~/.organseg/models.json``, or ``$ORGANSEG_HOME/models.json``) written atomically.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import List, Optional, Tuple

from organseglib.atomic import write_text_atomic

log = logging.getLogger(__name__)


def default_registry_path() -> Path:
    home = os.environ.get("ORGANSEG_HOME")
    return (Path(home) if home else Path.home() / ".organseg") / "models.json"


def _installed_packages() -> List[Tuple[str, str]]:
    try:
        from organseglib.model_package import find_model_packages
    except ImportError:  # the model-package module is not installed in this build
        return []
    found = []
    try:
        packages = find_model_packages()
    except Exception as exc:  # a broken package folder must not break the GUI
        log.warning("could not list model packages: %s", exc)
        return []
    for item in packages:
        path = str(getattr(item, "path", item))
        found.append((package_label(path), path))
    return found


def package_label(path: str, suffix: str = "") -> str:
    """``"<name> <version> (<training data>)"`` from the package's card, else the folder name."""
    try:
        from organseglib.model_package import read_card

        card = read_card(path)[0]
    except Exception:  # not readable here: the segment step reports the real problem
        return Path(path).name + suffix
    data = card.training_data if len(card.training_data) <= 40 else card.training_data[:39] + "…"
    terms = getattr(card, "weights_licence", "")
    note = " — non-commercial research use only" if "non-commercial" in terms.lower() else ""
    return f"{card.name} {card.version}{suffix} ({data}){note}"


class ModelRegistry:
    """The list of registered (retrained) model package paths."""

    def __init__(self, path: Optional[os.PathLike] = None) -> None:
        self.path = Path(path) if path is not None else default_registry_path()

    def registered(self) -> List[str]:
        """Registered paths that still exist, in registration order."""
        if not self.path.exists():
            return []
        try:
            items = json.loads(self.path.read_text(encoding="utf-8")).get("models", [])
        except (ValueError, AttributeError):
            log.warning("%s is not a model registry; ignoring it", self.path)
            return []
        return [str(p) for p in items if Path(str(p)).exists()]

    def register(self, model_path: os.PathLike) -> None:
        """Add a model package path (idempotent)."""
        path = str(Path(model_path).expanduser().resolve())
        items = [p for p in self.registered() if p != path] + [path]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps({"models": items}, indent=2) + "\n")

    def available(self) -> List[Tuple[str, str]]:
        """``(label, path)`` of installed packages, then registered ones not already listed."""
        models = _installed_packages()
        seen = {str(Path(p).resolve()) for _, p in models}
        for path in self.registered():
            if str(Path(path).resolve()) not in seen:
                models.append((package_label(path, " retrained"), path))
        return models
