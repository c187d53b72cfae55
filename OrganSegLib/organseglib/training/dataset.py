"""Training data: CT-ORG folders, exported training-set folders and phantoms, at 3 mm, cached.

One loader reads both folder kinds: CT-ORG's layout (``volume-N.nii.gz`` with ``labels-N.nii.gz``;
values 1 liver … 5 bone, 6 brain folded into background) and the folder the Slicer correction panel
exports (the same layout plus an optional ``manifest.json`` listing the cases). Each case enters the
network's space once (``organseglib.network_space``: 3 mm, section V-A, in the network's axis order;
the same door inference goes through) and is cached as ``.npz`` in a cache folder
keyed by the files' path, size and modification time (never written into the input folder).

Training batches are random crops (section V-A: "selecting a 120×120×160 subregion from the scan
uniformly at random"), padded with air where the scan is smaller than the crop.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..atomic import atomic_path
from ..ct_checks import AIR_HU
from ..errors import InputError, MissingFileError
from ..network_space import NETWORK_ORIENTATION, NETWORK_SPACING_MM, enter_network_space
from ..organs import check_label_values
from ..training_set import MANIFEST, parse_case_file, read_manifest
from ..volume import Volume

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: arrays reoriented to TRAINING_ORIENTATION; 3: the extra structures map (if any)
# Axis order of every training array (``organseglib.orientation``); the exported card records it so
# ``segment`` puts a scan into the same order before the network sees it.
TRAINING_ORIENTATION = NETWORK_ORIENTATION
CT_ORG_BRAIN = 6  # CT-ORG's sixth label, not one of our five organs: folded into background


@dataclass(frozen=True)
class CaseFiles:
    """One CT and its label map on disk."""

    case_id: str
    volume: Path
    labels: Path
    annotated: Optional[tuple] = None  # organ keys the labels annotate (manifest); None: all
    structures: Optional[Path] = None  # structures-N.nii.gz: spleen and vessels (extra_structures), if kept


@dataclass(frozen=True)
class TrainingCase:
    """A CT in HU and its labels, both ``(K, J, I)`` on the same 3 mm grid."""

    case_id: str
    image: np.ndarray   # float32 HU
    labels: np.ndarray  # uint8 organ values 0..5
    spacing_mm: float
    annotated: Optional[tuple] = None  # organ keys annotated; others unknown (partial labels, losses)
    structures: Optional[np.ndarray] = None  # uint8 extra structures (extra_structures.EXTRA_STRUCTURES)


def find_cases(folder: str | os.PathLike) -> list[CaseFiles]:
    """List the cases of a CT-ORG style folder (``manifest.json`` if present, else file names).

    Raises:
        MissingFileError: the folder, or a listed/expected label file, does not exist.
        InputError: the folder holds no case.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise MissingFileError(f"training data folder {str(root)!r} does not exist or is not a folder")
    cases: list[CaseFiles] = []
    if (root / MANIFEST).exists():  # the folder the Slicer module exports to (``training_set``)
        cases = [CaseFiles(str(e.id), root / e.volume, root / e.labels, e.annotated_organs)
                 for e in read_manifest(root)]
    else:
        for path in sorted(root.iterdir()):
            name = parse_case_file(path.name)  # the one naming rule (training_set.CASE_FILE)
            if name is not None and name.kind == "volume":
                cases.append(CaseFiles(name.id, path, root / name.partner))
    if not cases:
        raise InputError(f"no training cases in {str(root)!r}: expected volume-N.nii.gz with labels-N.nii.gz "
                         "(CT-ORG layout) or a manifest.json")
    for case in cases:
        for path in (case.volume, case.labels):
            if not path.exists():
                raise MissingFileError(f"case {case.case_id!r}: {str(path)!r} does not exist")
    cases = [_with_structures(c) for c in cases]
    return sorted(cases, key=lambda c: (len(c.case_id), c.case_id))


def _with_structures(case: CaseFiles) -> CaseFiles:
    """The case with its ``structures-N`` file when one lies beside its labels."""
    from dataclasses import replace

    from ..extra_structures import structures_path

    try:
        path = structures_path(case.labels)
    except InputError:
        return case
    return replace(case, structures=path) if path.is_file() else case


def fold_ct_org_labels(array: np.ndarray, source: str = "labels") -> np.ndarray:
    """CT-ORG values to ours: 6 (brain) -> 0; every other value must be 0..5."""
    out = np.asarray(array)
    if np.issubdtype(out.dtype, np.floating):
        out = np.rint(out)
    out = out.astype(np.int32)
    out[out == CT_ORG_BRAIN] = 0
    check_label_values(out, source)
    return out.astype(np.uint8)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ORGANSEG_CACHE", Path.home() / ".cache" / "organseg")) / "training"


def _cache_key(case: CaseFiles, spacing_mm: float) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{spacing_mm}".encode())
    for path in (case.volume, case.labels) + ((case.structures,) if case.structures else ()):
        st = path.stat()
        h.update(f"|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def resample_case(ct: Volume, labels: Volume, spacing_mm: float = NETWORK_SPACING_MM) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased CT and nearest-neighbour labels on the ``spacing_mm`` grid (section V-A), in
    ``TRAINING_ORIENTATION`` axis order: the CT through the network's door, the labels with it."""
    image, space = enter_network_space(ct, spacing_mm, TRAINING_ORIENTATION)
    return image, space.labels_to_network(labels).astype(np.uint8, copy=False)


def load_case(case: CaseFiles, spacing_mm: float = NETWORK_SPACING_MM,
              cache_dir: Optional[str | os.PathLike] = None) -> TrainingCase:
    """Read, fold, resample (once) and cache one case.

    Raises:
        GeometryError: the labels are not on the CT's grid.
        and everything ``read_ct`` / ``read_volume`` raise for bad files.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / f"case-{_cache_key(case, spacing_mm)}.npz"
    if cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as data:
                structures = data["structures"] if "structures" in data.files else None
                return TrainingCase(case.case_id, data["image"], data["labels"], spacing_mm, case.annotated,
                                    structures)
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable cache file %s", cache_file)
    from ..io import read_ct, read_volume

    ct = read_ct(case.volume)
    raw = read_volume(case.labels)
    ct.require_same_grid(raw, what=f"labels {str(case.labels)!r}")
    labels = raw.with_array(fold_ct_org_labels(raw.array, str(case.labels)))
    image, space = enter_network_space(ct, spacing_mm, TRAINING_ORIENTATION)  # as resample_case
    arrays = {"image": image, "labels": space.labels_to_network(labels).astype(np.uint8, copy=False)}
    if case.structures is not None:  # nearest neighbour, as the labels
        extra = read_volume(case.structures)
        ct.require_same_grid(extra, what=f"structures {str(case.structures)!r}")
        extra = extra.with_array(np.asarray(extra.array).astype(np.uint8))
        arrays["structures"] = space.labels_to_network(extra).astype(np.uint8, copy=False)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_file) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return TrainingCase(case.case_id, image, arrays["labels"], spacing_mm, case.annotated, arrays.get("structures"))


def phantom_cases(seeds: Sequence[int], region: str = "abdomen", spacing_mm: float = NETWORK_SPACING_MM,
                  **phantom_kwargs) -> list[TrainingCase]:
    """Synthetic training cases rendered directly on the ``spacing_mm`` grid (the network's door then
    only reorders the axes: a CT already on the network's grid is not resampled)."""
    from ..phantom import make_phantom

    out = []
    for seed in seeds:
        p = make_phantom(seed=int(seed), region=region, size="small", spacing=(spacing_mm,) * 3, **phantom_kwargs)
        ct, labels = resample_case(p.ct, p.labels, spacing_mm)
        out.append(TrainingCase(f"phantom-{seed}", ct, labels, spacing_mm))
    return out


def load_dataset(source: str | os.PathLike, spacing_mm: float = NETWORK_SPACING_MM,
                 cache_dir: Optional[str | os.PathLike] = None,
                 progress: Optional[Callable[[float, str], None]] = None) -> list[TrainingCase]:
    """A folder (CT-ORG or exported training set) or ``phantoms:COUNT[:REGION]`` (seeds 0..COUNT−1).

    Raises:
        InputError: malformed ``phantoms:`` specification or an empty folder.
    """
    text = str(source)
    if text.startswith("phantoms:"):
        parts = text.split(":")
        try:
            count = int(parts[1])
            region = parts[2] if len(parts) > 2 else "abdomen"
        except (IndexError, ValueError):
            count, region = 0, ""
        if count < 1 or len(parts) > 3:
            raise InputError(f"phantom data must read phantoms:COUNT[:REGION] with COUNT ≥ 1; got {text!r}")
        return phantom_cases(range(count), region=region, spacing_mm=spacing_mm)
    cases = find_cases(source)
    out = []
    for n, case in enumerate(cases):
        if progress is not None:
            progress(n / len(cases), f"loading case {case.case_id}")
        out.append(load_case(case, spacing_mm, cache_dir))
    return out


def random_crop(image: np.ndarray, labels: np.ndarray, shape: Sequence[int], rng: np.random.Generator,
                fill_hu: float = AIR_HU) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly placed crop of ``shape`` (K, J, I); axes shorter than the crop are padded with
    air (labels 0) at a uniformly random offset."""
    img_out = np.full(shape, fill_hu, dtype=np.float32)
    lab_out = np.zeros(shape, dtype=np.uint8)
    src, dst = [], []
    for n, c in zip(image.shape, shape):
        if n >= c:
            s = int(rng.integers(0, n - c + 1))
            src.append(slice(s, s + c))
            dst.append(slice(0, c))
        else:
            d = int(rng.integers(0, c - n + 1))
            src.append(slice(0, n))
            dst.append(slice(d, d + n))
    img_out[tuple(dst)] = image[tuple(src)]
    lab_out[tuple(dst)] = labels[tuple(src)]
    return img_out, lab_out
