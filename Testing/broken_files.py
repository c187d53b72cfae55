"""Files broken on purpose, for the tests and scripts/hostile_sweep.py: a checkpoint and a model package
whose tensors hold NaN or infinity (the package re-signed, so that its SHA-256 still matches its card)."""

from __future__ import annotations

import json
from pathlib import Path


def poison_checkpoint(path: Path, value: float = float("nan")) -> str:
    """Fill the first floating-point model tensor of a training checkpoint with ``value``, keeping its
    metadata; returns the tensor's name."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    name = next(k for k in tensors if k.startswith("model.") and tensors[k].is_floating_point())
    tensors[name] = torch.full_like(tensors[name], value)
    save_file(tensors, str(path), metadata=meta)
    return name


def poison_package(package: Path, value: float = float("inf")) -> str:
    """Fill the first floating-point tensor of a model package with ``value`` and re-sign the card (its
    SHA-256 and size made to match): damage no hash can catch. Returns the tensor's name."""
    import torch
    from safetensors.torch import load_file, save_file

    from organseglib.model_package import CARD_FILE, WEIGHTS_FILE, sha256_file

    weights_path = Path(package) / WEIGHTS_FILE
    weights = load_file(str(weights_path))
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = torch.full_like(weights[name], value)
    save_file(weights, str(weights_path), metadata={"format": "organseg-model-package"})
    card = json.loads((Path(package) / CARD_FILE).read_text())
    card["weights"].update(sha256=sha256_file(weights_path), bytes=weights_path.stat().st_size)
    (Path(package) / CARD_FILE).write_text(json.dumps(card))
    return name
