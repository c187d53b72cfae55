"""Which model packages the Segment panel offers: installed ones plus those retraining registered.

The registry itself is the library's (``organseglib.model_registry``: ``$ORGANSEG_HOME/models.json``,
default ``~/.organseg/models.json``), so a model retrained here is also found by
``organseg segment --model NAME``. Installed packages come from
``organseglib.model_package.find_model_packages()`` (the bundled models, the default first, the folders of
``$ORGANSEG_MODELS``); registered ones are labelled "retrained".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Tuple

from organseglib.model_registry import ModelRegistry as LibraryModelRegistry
from organseglib.model_registry import default_registry_path  # noqa: F401  (the GUI shows where it is)

log = logging.getLogger(__name__)


def _installed_packages() -> List[Tuple[str, str]]:
    """``(label, path)`` of the packages found outside the registry."""
    try:
        from organseglib.model_package import find_model_packages
        from organseglib.model_registry import ModelRegistry as _Registry
    except ImportError:  # the model-package module is not installed in this build
        return []
    try:
        registered = {str(Path(p).resolve()) for p in _Registry().registered()}
        packages = [p for p in find_model_packages() if str(Path(p).resolve()) not in registered]
    except Exception as exc:  # a broken package folder must not break the GUI
        log.warning("could not list model packages: %s", exc)
        return []
    return [(package_label(str(p)), str(p)) for p in packages]


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


class ModelRegistry(LibraryModelRegistry):
    """The library's registry plus the Segment panel's list of models."""

    def available(self) -> List[Tuple[str, str]]:
        """``(label, path)`` of installed packages, then registered ones not already listed."""
        models = _installed_packages()
        seen = {str(Path(p).resolve()) for _, p in models}
        for path in self.registered():
            if str(Path(path).resolve()) not in seen:
                models.append((package_label(path, " retrained"), path))
        return models
