"""Shared by the bad-input tests (``test_bad_inputs.py``, ``test_bad_masks_geometry_models.py``): run a
command that must be refused, and the phantom CT as a scanner writes it."""

from __future__ import annotations

import numpy as np

from organseglib.cli import main
from organseglib.volume import Volume


def refused(capsys, argv, must_name, inputs=(), outputs=()):
    """Run ``organseg ARGV``; check exit 2, one stderr line naming ``must_name``, inputs unchanged,
    no output (nor temporary) file left. Returns the error line."""
    before = {p: p.read_bytes() for p in inputs if p.is_file()}
    rc = main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert str(must_name) in err[0]
    for p, data in before.items():
        assert p.read_bytes() == data, f"input {p} was changed"
    for out in outputs:
        assert not out.exists(), f"{out} was written"
        assert not [p for p in out.parent.iterdir() if ".part" in p.name], "a temporary file was left"
    return err[0]


def ct_int16(phantom) -> Volume:
    """The phantom's CT as int16 HU, as scanners write it."""
    return phantom.ct.with_array(np.round(phantom.ct.array).astype(np.int16))
