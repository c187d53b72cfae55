"""Model packages: a trained network as safetensors weights, a JSON card and the weights' SHA-256.

A package is a folder::

    NAME/
      model.safetensors   the state dict (tensor name -> tensor), never a pickle
      card.json           what the model is (see ``ModelCard``), including ``weights.sha256``

The SHA-256 of ``model.safetensors`` lives in ``card.json`` (``"weights": {"file", "sha256",
"bytes"}``): one place, read before the weights are touched. Loading checks, in order: the card parses
and names a known format version; the weights' size and SHA-256 match the card; the safetensors
header parses; the tensor names and shapes are exactly those of ``build_network`` for the card's
architecture, width, classes and input channels (a strict load). Any failure raises
``ModelPackageError`` naming the file and the problem. The hash catches corruption and a card paired
with the wrong weights; it is not a signature (whoever can rewrite the weights can rewrite the card).

Axis order: ``tile_shape`` is ``(K, J, I)`` — slices, rows, columns — the order of ``Volume.array``;
the paper's tile 120 × 120 × 160 (i × j × k) is ``(160, 120, 120)`` here.

>>> card = ModelCard(name="example", width=0.0625)
>>> card.classes[3]["key"], card.classes[3]["value"]
('lungs', 3)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import math
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from .atomic import new_file_mode, remove_stale_temporaries, temporary_name
from .errors import InputError, MissingFileError, ModelPackageError, OutputExistsError
from .network_space import NETWORK_ORIENTATION, NETWORK_SPACING_MM
from .network_spec import ARCHITECTURES, NetworkSpec
from .organs import organ_table

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
FORMAT = "organseg-model-package"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
ENV_MODELS = "ORGANSEG_MODELS"  # extra folders holding model packages, os.pathsep-separated
DEMO_MODEL = "demo"  # bundled, trained on synthetic phantoms only (scripts/train_demo_model.py)
# The default: bundled, fine-tuned on phantoms and real CT (scripts/train_real_model.py). Its weights are for
# non-commercial research use only (trained on 3D-IRCADb-01 data, CC BY-NC-ND 4.0): its card says so.
DEFAULT_MODEL = "real"
# the network's rules, from the torch-free spec (the Slicer GUI reads cards without torch)
CARD_ARCHITECTURES = ARCHITECTURES


def default_classes() -> tuple[dict, ...]:
    """Channel → label value table: channel 0 background, then the organs by value (Table I: 6 outputs)."""
    out = [{"channel": 0, "value": 0, "key": "background", "name": "Background", "color": [0.0, 0.0, 0.0],
            "terminology": ""}]
    for channel, organ in enumerate(organ_table(), start=1):
        out.append({"channel": channel, "value": organ.value, "key": organ.key, "name": organ.name,
                    "color": [float(c) for c in organ.color], "terminology": organ.terminology_entry})
    return tuple(out)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelCard:
    """What a model is and how to feed it. Defaults are the paper's network (section V, Table I).

    Args:
        name: short name (the folder name by convention).
        version: the model's own version string.
        description: one paragraph for people.
        architecture, width, num_classes, in_channels: ``build_network`` arguments.
        spacing_mm: isotropic voxel size the network works at (section V-A: 3 mm).
        tile_shape: network input ``(K, J, I)`` voxels (section V-A: 120 × 120 × 160 i × j × k);
            multiples of 8 (the network's downsampling).
        window_hu: intensity window ``(low, high)`` HU mapped to [0, 1] (eq. 3).
        orientation: axis order of the arrays the network was trained on (``organseglib.orientation``
            codes; ``"LPS"``: ``i`` towards the patient's left, ``j`` posterior, ``k`` superior, the
            phantoms' and DICOM's order). Inference puts every scan into this order first.
        classes: one entry per output channel: ``channel``, label ``value``, ``key``, ``name``,
            ``color`` (RGB 0..1), ``terminology`` (Slicer terminology entry).
        training_data: what it was trained on, said plainly (e.g. "synthetic phantoms only").
        provenance: training details (script, iterations, loss, seed, date, ...).
        intended_use: e.g. "demonstration only; not for clinical use".
        data_sources: one entry per training data source: ``name``, ``licence`` (required), and e.g.
            ``source`` (where it comes from), ``cases``, ``labels`` ("hand-drawn", "model-made",
            "auto-labelled lungs, bone"), ``annotated`` (organs).
        weights_licence: the terms the weights inherit from their data (e.g. "non-commercial research
            use only (trained on 3D-IRCADb, CC BY-NC-ND 4.0)"); empty: no restriction recorded.
        created: ISO date (UTC) the package was written.

    Raises:
        ModelPackageError: a field breaks its rule.
    """

    name: str
    version: str = "1.0.0"
    description: str = ""
    architecture: str = "googlenet3d"
    width: float = 1.0
    num_classes: int = 6
    in_channels: int = 1
    spacing_mm: float = NETWORK_SPACING_MM
    tile_shape: tuple = (160, 120, 120)
    window_hu: tuple = (-1000.0, 1000.0)
    orientation: str = NETWORK_ORIENTATION
    classes: tuple = field(default_factory=default_classes)
    training_data: str = "unknown"
    provenance: dict = field(default_factory=dict)
    intended_use: str = "research; not validated for clinical use"
    data_sources: tuple = ()
    weights_licence: str = ""
    created: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        def bad(what: str, value: Any, rule: str) -> ModelPackageError:
            return ModelPackageError(f"model card field {what!r} {rule}; got {value!r}")

        if not isinstance(self.name, str) or not self.name.strip():
            raise bad("name", self.name, "must be a non-empty string")
        tile = tuple(int(t) for t in self.tile_shape) if len(self.tile_shape) == 3 else None
        if tile is None or any(t <= 0 or t % 8 for t in tile):
            raise bad("tile_shape", self.tile_shape, "must be three positive multiples of 8 (K, J, I voxels)")
        object.__setattr__(self, "tile_shape", tile)
        window = tuple(float(w) for w in self.window_hu)
        if len(window) != 2 or not window[1] > window[0]:
            raise bad("window_hu", self.window_hu, "must be (low, high) HU with low < high")
        object.__setattr__(self, "window_hu", window)
        from .orientation import check_axis_code

        try:
            object.__setattr__(self, "orientation", check_axis_code(self.orientation))
        except InputError as exc:
            raise bad("orientation", self.orientation, "must be an axis code such as 'LPS'") from exc
        try:  # the network's own rules (one definition: network_spec.NetworkSpec)
            NetworkSpec(self.architecture, self.num_classes, self.width, self.in_channels)
        except (InputError, TypeError, ValueError) as exc:
            raise ModelPackageError(f"model card: {exc}") from exc
        if not (math.isfinite(float(self.spacing_mm)) and float(self.spacing_mm) > 0):
            raise bad("spacing_mm", self.spacing_mm, "must be a positive, finite number of mm")
        object.__setattr__(self, "width", float(self.width))
        object.__setattr__(self, "spacing_mm", float(self.spacing_mm))
        classes = tuple(dict(c) for c in self.classes)
        channels = sorted(int(c.get("channel", -1)) for c in classes)
        if channels != list(range(int(self.num_classes))):
            raise bad("classes", [c.get("channel") for c in classes],
                      f"must list channels 0..{int(self.num_classes) - 1} once each (num_classes={self.num_classes})")
        values = [int(c.get("value", -1)) for c in classes]
        allowed = {0, *(o.value for o in organ_table())}
        if len(set(values)) != len(values) or not set(values) <= allowed:
            raise bad("classes", values, f"must map channels to distinct label values in {sorted(allowed)}")
        object.__setattr__(self, "classes", tuple(sorted(classes, key=lambda c: int(c["channel"]))))
        sources = tuple(dict(d) if isinstance(d, dict) else d for d in self.data_sources)
        for d in sources:
            if not isinstance(d, dict) or not str(d.get("name", "")).strip() or not str(d.get("licence", "")).strip():
                raise bad("data_sources", d, "must hold objects with a non-empty 'name' and 'licence'")
        object.__setattr__(self, "data_sources", sources)

    @property
    def channel_values(self) -> tuple[int, ...]:
        """Label value of each output channel (index = channel)."""
        return tuple(int(c["value"]) for c in self.classes)

    def network_kwargs(self) -> dict:
        return {"architecture": self.architecture, "num_classes": int(self.num_classes),
                "width": float(self.width), "in_channels": int(self.in_channels)}

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["tile_shape"] = list(self.tile_shape)
        data["window_hu"] = list(self.window_hu)
        data["classes"] = [dict(c) for c in self.classes]
        data["data_sources"] = [dict(d) for d in self.data_sources]
        return data

    @classmethod
    def from_json(cls, data: dict, source: str = CARD_FILE) -> "ModelCard":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"format", "format_version", "weights"})
        if unknown:
            log.warning("%s: ignoring unknown card fields %s", source, unknown)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise ModelPackageError(f"{source}: invalid model card: {exc}") from exc


# --- writing ------------------------------------------------------------------------------------------
def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_model_package(folder: PathLike, model: "Any", card: ModelCard, overwrite: bool = False) -> Path:
    """Write ``model``'s state dict and ``card`` as a package folder, atomically.

    Everything is written to a temporary folder beside ``folder`` and renamed into place, so a reader
    never sees half a package; with ``overwrite`` an existing package is replaced the same way.

    Args:
        folder: the package folder to create (its parent must exist).
        model: a ``torch.nn.Module`` built by ``build_network(**card.network_kwargs())``.
        card: the model card.
        overwrite: replace an existing ``folder``.

    Raises:
        OutputExistsError: ``folder`` exists and ``overwrite`` is False.
        MissingFileError: the parent folder does not exist.
        ModelPackageError: the model's tensors do not match the card's architecture.
    """
    from safetensors.torch import save_file

    target = Path(folder).expanduser()
    if not target.parent.is_dir():
        raise MissingFileError(f"cannot write model package {str(target)!r}: folder {str(target.parent)!r} "
                               "does not exist; create it first")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"model package {str(target)!r} exists; pass overwrite=True or pick another name")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    _check_tensors(state, card, f"model for {str(target)!r}")
    bad = nonfinite_tensors(state)
    if bad:  # a package of NaN weights would segment nothing, everywhere, with exit 0
        raise ModelPackageError(f"refusing to write model package {str(target)!r}: its weights hold "
                                f"{describe_nonfinite(bad)}; the training diverged (lower --lr and train again from "
                                "the last good checkpoint); nothing was written")
    remove_stale_temporaries(target.parent)  # a package folder left half-written by a killed run
    tmp = Path(tempfile.mkdtemp(prefix=temporary_name(target), suffix=".part", dir=target.parent))
    try:
        weights = tmp / WEIGHTS_FILE
        save_file(state, str(weights), metadata={"format": FORMAT, "name": card.name})
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, **card.to_json(),
                "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(weights), "bytes": weights.stat().st_size}}
        (tmp / CARD_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, new_file_mode(folder=True))  # mkdtemp's 0o700 would hide it from everyone else
        for item in (weights, tmp / CARD_FILE):
            os.chmod(item, new_file_mode())
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=temporary_name(target), suffix=".old", dir=target.parent))
            os.replace(target, old / "package")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote model package %s (%s)", target, card.name)
    return target


# --- reading ------------------------------------------------------------------------------------------
def read_card(folder: PathLike) -> tuple[ModelCard, dict]:
    """The card of a package and its ``weights`` record, without touching the weights.

    Raises:
        ModelPackageError: missing or unreadable card, unknown format version, invalid fields.
    """
    path = Path(folder).expanduser() / CARD_FILE
    if not path.is_file():
        raise ModelPackageError(f"{str(path)!r} does not exist: {str(folder)!r} is not a model package "
                                f"(a folder with {CARD_FILE} and {WEIGHTS_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{str(path)!r} is not valid JSON ({exc}); the package is corrupt") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelPackageError(f"{str(path)!r}: 'format' must be {FORMAT!r}; got "
                                f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r}")
    version = data.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelPackageError(f"{str(path)!r}: format_version {version!r} is not supported (this organseglib "
                                f"reads 1..{FORMAT_VERSION}); update organseglib")
    weights = data.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("sha256"), str):
        raise ModelPackageError(f"{str(path)!r}: missing 'weights': {{'file', 'sha256', 'bytes'}}")
    return ModelCard.from_json(data, str(path)), weights


def _check_tensors(shapes: dict, card: ModelCard, source: str) -> None:
    """Tensor names and shapes must equal those of the card's network (strict)."""
    import torch

    from .network import build_network

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_network(**card.network_kwargs()).state_dict().items()}
    got = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in shapes.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]!r})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensors of the wrong shape (e.g. {k!r}: {got[k]} instead of {expected[k]})")
        raise ModelPackageError(
            f"{source}: the weights do not match the card's network ({card.architecture}, width {card.width}, "
            f"{card.num_classes} classes, {card.in_channels} input channels): {'; '.join(parts)}. The card and "
            "weights come from different models; re-export the package from the training run")


def nonfinite_tensors(state: dict) -> list[tuple[str, int]]:
    """``(name, count)`` of every floating-point tensor in ``state`` holding NaN or infinite values."""
    import torch

    bad = []
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad.append((name, count))
    return bad


def describe_nonfinite(bad: list[tuple[str, int]]) -> str:
    """``"170 values in 12 tensors (e.g. 'stem.0.weight': 64)"``."""
    total = sum(count for _, count in bad)
    name, count = bad[0]
    return f"{total} NaN or infinite values in {len(bad)} tensor{'s' if len(bad) > 1 else ''} (e.g. {name!r}: {count})"


def load_model_package(folder: PathLike, device: "Any" = "cpu") -> tuple["Any", ModelCard]:
    """Load a package's network (eval mode, on ``device``) and card, after verifying both.

    Raises:
        ModelPackageError: missing files, a SHA-256 or size mismatch (tampered or corrupt weights),
            an unreadable safetensors file, or weights that do not fit the card's network.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    from .network import build_network

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ModelPackageError(f"model package {str(folder)!r} is not a folder; pass a folder holding "
                                f"{CARD_FILE} and {WEIGHTS_FILE}")
    card, record = read_card(root)
    weights = root / WEIGHTS_FILE
    if record.get("file", WEIGHTS_FILE) != WEIGHTS_FILE or not weights.is_file():
        # the card may not point outside the package (e.g. "../other/model.safetensors")
        raise ModelPackageError(f"{str(weights)!r} does not exist or is not the card's weights file "
                                f"({record.get('file')!r}); the package is incomplete or its card was edited")
    data = weights.read_bytes()  # read once: the bytes hashed are the bytes loaded
    try:
        expected_size = None if record.get("bytes") is None else int(record["bytes"])
    except (TypeError, ValueError):
        raise ModelPackageError(f"{CARD_FILE} in {str(root)!r}: weights 'bytes' must be an integer; got "
                                f"{record['bytes']!r}; re-export the package") from None
    if expected_size is not None and expected_size != len(data):
        raise ModelPackageError(f"{str(weights)!r} has {len(data)} bytes but {CARD_FILE} says {record['bytes']}: "
                                "the weights are truncated or were replaced; re-download or re-export the package")
    digest = hashlib.sha256(data).hexdigest()
    if digest != str(record["sha256"]).lower():
        raise ModelPackageError(f"{str(weights)!r}: SHA-256 {digest} does not match {CARD_FILE} "
                                f"({record['sha256']}): the weights were modified or corrupted; refusing to load")
    try:
        state = load_bytes(data)
        del data
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelPackageError(f"{str(weights)!r} is not a readable safetensors file ({exc})") from exc
    _check_tensors(state, card, str(weights))
    bad = nonfinite_tensors(state)
    if bad:  # the hash matches: they were written so (a diverged run, or weights re-signed after damage)
        raise ModelPackageError(f"{str(weights)!r} holds {describe_nonfinite(bad)}: the model is broken (exported "
                                "from a diverged run, or damaged and re-signed); use another package or re-export it "
                                "from a good checkpoint")
    model = build_network(**card.network_kwargs())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # dtype or other strict-load problems
        raise ModelPackageError(f"{str(weights)!r}: cannot load into the card's network: {exc}") from exc
    return model.to(torch.device(device)).eval(), card


# --- finding ------------------------------------------------------------------------------------------
def is_model_package(folder: PathLike) -> bool:
    p = Path(folder)
    return (p / CARD_FILE).is_file() and (p / WEIGHTS_FILE).is_file()


def bundled_models_folder() -> Path:
    """``organseglib/data/models`` (a link to ``Resources/Models`` in a source checkout)."""
    return Path(str(resources.files("organseglib").joinpath("data/models")))


def model_search_paths() -> list[Path]:
    """Where packages are searched: ``$ORGANSEG_MODELS`` entries first, then the packages of the
    user's registry (``organseglib.model_registry``, where Slicer's Retrain registers), newest first,
    then the bundled models."""
    from .model_registry import ModelRegistry

    extra = [Path(p).expanduser() for p in os.environ.get(ENV_MODELS, "").split(os.pathsep) if p.strip()]
    registered = [Path(p) for p in reversed(ModelRegistry().registered())]
    return extra + registered + [bundled_models_folder()]


def find_model_packages(search_paths: Optional[Iterable[PathLike]] = None) -> list[Path]:
    """Packages found in ``search_paths`` (default ``model_search_paths()``): each path that is itself a
    package, and each package directly inside it; sorted within a folder, no duplicates."""
    found: list[Path] = []
    for base in (model_search_paths() if search_paths is None else [Path(p).expanduser() for p in search_paths]):
        # within a folder by name, the bundled default first (the Slicer panel preselects the first one)
        candidates = [base] if is_model_package(base) else (
            sorted(base.iterdir(), key=lambda p: (p.name != DEFAULT_MODEL, p.name)) if base.is_dir() else [])
        for c in candidates:
            if is_model_package(c) and c.resolve() not in {f.resolve() for f in found}:
                found.append(c)
    return found


def bundled_model_path(name: str) -> Path:
    """A bundled model package (``Resources/Models/NAME``): ``DEFAULT_MODEL`` or ``DEMO_MODEL``.

    Raises:
        ModelPackageError: it is not installed.
    """
    path = bundled_models_folder() / name
    if not is_model_package(path):
        raise ModelPackageError(
            f"the bundled model {name!r} is missing ({str(path)!r} holds no {CARD_FILE} + {WEIGHTS_FILE}); pass a "
            f"model package with --model PATH, or list folders of packages in ${ENV_MODELS}")
    return path


def default_model_path() -> Path:
    """The bundled default model (``Resources/Models/real``: phantoms + real CT, non-commercial weights).

    Raises:
        ModelPackageError: it is not installed.
    """
    return bundled_model_path(DEFAULT_MODEL)


def resolve_model(spec: Optional[PathLike]) -> Path:
    """A package folder from a path, a package name found by ``find_model_packages``, or None (the default).

    Raises:
        ModelPackageError: nothing matches.
    """
    if spec is None:
        return default_model_path()
    path = Path(spec).expanduser()
    if path.exists():
        return path
    matches = [p for p in find_model_packages() if p.name == str(spec)]
    if matches:
        return matches[0]
    names = ", ".join(p.name for p in find_model_packages()) or "none"
    raise ModelPackageError(f"model {str(spec)!r} is neither a folder nor a known package name (found: {names}); "
                            f"pass a package folder, add its parent to ${ENV_MODELS}, or register it "
                            "(organseglib.model_registry)")


__all__ = ["CARD_FILE", "FORMAT", "FORMAT_VERSION", "ModelCard", "WEIGHTS_FILE", "default_classes",
           "DEFAULT_MODEL", "DEMO_MODEL", "bundled_model_path", "default_model_path", "find_model_packages", "is_model_package", "load_model_package",
           "model_search_paths", "nonfinite_tensors", "read_card", "resolve_model", "save_model_package", "sha256_file"]

