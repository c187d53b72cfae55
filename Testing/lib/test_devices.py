"""The one device parser (``organseglib.devices``), used by the CLI, the library and the Slicer module."""

from __future__ import annotations

import pytest
import torch

from organseglib.devices import parse_device, resolve_device
from organseglib.errors import InputError


@pytest.mark.parametrize("text, expected", [
    ("auto", "auto"), (" CPU ", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("GPU", "cuda"), ("gpu:0", "cuda:0"),
    ("Auto", "auto"), ("cuda:01", "cuda:1"),
])
def test_parse_device_accepts_every_spelling_of_the_gui_and_the_cli(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["tpu", "", "cuda:", "cuda:-1", "cpu:0", "auto:1", "cuda:x", "mps"])
def test_parse_device_refuses_other_names_with_the_accepted_ones(text):
    with pytest.raises(InputError, match=r"auto, cpu or cuda\[:N\]"):
        parse_device(text)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match=r"auto, cpu or cuda\[:N\]"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "GPU", "cuda:0"):
            with pytest.raises(InputError, match="no CUDA GPU"):
                resolve_device(name)
    else:
        with pytest.raises(InputError, match="numbered from 0"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_the_slicer_module_uses_the_same_parser():
    """The Slicer side (jobs, Widget) imports the library's parser; no device table of its own."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "OrganSeg"
    sources = {p.name: p.read_text(encoding="utf-8") for p in root.rglob("*.py")}
    assert "from organseglib.devices import parse_device" in sources["jobs.py"]
    assert "parse_device(self.ui.deviceComboBox.currentText)" in sources["OrganSeg.py"]
    assert not any("DEVICES" in text or '"GPU": "cuda"' in text for text in sources.values())
