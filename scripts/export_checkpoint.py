#!/usr/bin/env python
"""Write a model package from a training checkpoint (e.g. a ``checkpoint-ITER.safetensors`` copy kept by
``train_real_model.py --keep-every``), so the models of shorter budgets of one run can be scored.

    python scripts/export_checkpoint.py CHECKPOINT TEMPLATE_PACKAGE OUT [--name NAME]
    python scripts/export_checkpoint.py --iteration CHECKPOINT      # print the checkpoint's iteration

The card is the template package's (the same run's final package, or any package of the same width and
window) with the iteration count, the checkpoint and the date put into its description and provenance.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "OrganSegLib"), str(REPO / "CUDAAugment")]


def checkpoint_iteration(path: Path) -> int:
    from organseglib.training.checkpoint import read_checkpoint

    _, meta = read_checkpoint(path)
    return int(meta["state"]["iteration"])


def export(checkpoint: Path, template: Path, out: Path, name: str | None = None) -> Path:
    from organseglib.model_package import load_model_package, save_model_package
    from organseglib.training.checkpoint import read_checkpoint

    model, card = load_model_package(template)
    tensors, meta = read_checkpoint(checkpoint)
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True)
    iteration = int(meta["state"]["iteration"])
    provenance = dict(card.provenance, iterations=iteration, exported_from_checkpoint=str(checkpoint),
                      date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    card = dataclasses.replace(card, name=name or out.name, provenance=provenance,
                               description=f"{card.description} Exported at iteration {iteration} from {checkpoint.name}.")
    save_model_package(out, model.eval(), card, overwrite=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("template", type=Path, nargs="?")
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--name", default=None)
    ap.add_argument("--iteration", action="store_true", help="only print the checkpoint's iteration")
    args = ap.parse_args()
    if args.iteration:
        print(checkpoint_iteration(args.checkpoint))
        return 0
    if args.template is None or args.out is None:
        ap.error("TEMPLATE_PACKAGE and OUT are needed to export")
    print(export(args.checkpoint, args.template, args.out, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
