"""The one registry of model packages the user trained: read by ``organseg segment --model NAME``
and the Slicer module alike.

A small JSON file, ``$ORGANSEG_HOME/models.json`` (default ``~/.organseg/models.json``)::

    {"models": ["/data/models/retrained-2026-11-27", ...]}

listing package folders in registration order. Retraining in Slicer registers its output; any
registered package is then found by its folder name (``--model retrained-2026-11-27``) as well as by
its path. Paths that no longer exist are skipped, never an error; a file that is not a registry is
ignored with a warning (the bundled models still work). Writes are atomic.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import List, Optional, Union

from .atomic import write_text_atomic
from .errors import MissingFileError

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
ENV_HOME = "ORGANSEG_HOME"  # folder of the user's OrganSeg state (the registry); tests point it at tmp_path
REGISTRY_FILE = "models.json"


def organseg_home() -> Path:
    """``$ORGANSEG_HOME`` or ``~/.organseg``."""
    home = os.environ.get(ENV_HOME, "").strip()
    return Path(home).expanduser() if home else Path.home() / ".organseg"


def default_registry_path() -> Path:
    return organseg_home() / REGISTRY_FILE


class ModelRegistry:
    """The list of registered model package folders.

    Args:
        path: the registry file (default ``default_registry_path()``, read when the registry is
            used, so a changed ``$ORGANSEG_HOME`` takes effect).
    """

    def __init__(self, path: Optional[PathLike] = None) -> None:
        self._path = Path(path).expanduser() if path is not None else None

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else default_registry_path()

    def _entries(self) -> List[str]:
        if not self.path.is_file():
            return []
        try:
            items = json.loads(self.path.read_text(encoding="utf-8")).get("models", [])
        except (ValueError, AttributeError, OSError) as exc:
            log.warning("%s is not a model registry (%s); ignoring it", self.path, exc)
            return []
        if not isinstance(items, list):
            log.warning("%s: 'models' is not a list; ignoring it", self.path)
            return []
        return [str(p) for p in items]

    def registered(self) -> List[str]:
        """Registered package folders that still exist, in registration order."""
        return [p for p in self._entries() if Path(p).is_dir()]

    def register(self, model_path: PathLike) -> Path:
        """Add a package folder (absolute path; registering it again moves it last). Returns the path.
        Its contents are not checked here (loading the package reports the exact problem), so this
        module never imports ``model_package``, which reads the registry.

        Raises:
            MissingFileError: ``model_path`` is not an existing folder.
        """
        path = Path(model_path).expanduser().resolve()
        if not path.is_dir():
            raise MissingFileError(f"cannot register model {str(model_path)!r}: no such folder; pass the package "
                                   "folder `organseg train` wrote")
        items = [p for p in self._entries() if p != str(path)] + [str(path)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps({"models": items}, indent=2) + "\n")
        log.info("registered model %s in %s", path, self.path)
        return path

    def find(self, name: str) -> Optional[Path]:
        """The most recently registered package whose folder name is ``name`` (None if none)."""
        for item in reversed(self.registered()):
            if Path(item).name == str(name):
                return Path(item)
        return None


__all__ = ["ENV_HOME", "ModelRegistry", "REGISTRY_FILE", "default_registry_path", "organseg_home"]
