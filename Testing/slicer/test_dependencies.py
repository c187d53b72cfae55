"""First-use installation decisions, with a stand-in ``slicer`` module (no Slicer needed)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "OrganSeg"))

from OrganSegCommon import dependencies as deps  # noqa: E402

REQUIREMENTS = REPO / "Resources" / "requirements.txt"


class FakeSlicer(types.SimpleNamespace):
    """Records the install calls; ``packaging`` present only for Slicer >= 5.12."""

    def __init__(self, new_api: bool, confirm: bool = True):
        calls = []
        util = types.SimpleNamespace(
            confirmOkCancelDisplay=lambda text, **kw: calls.append(("confirm", text)) or confirm,
            pip_install=lambda requirements: calls.append(("pip_install", requirements)),
        )
        super().__init__(__name__="fake_slicer", util=util, calls=calls)
        if new_api:
            self.packaging = types.SimpleNamespace(
                load_requirements=lambda path: ["req-from", str(path)],
                pip_ensure=lambda reqs, **kw: calls.append(("pip_ensure", reqs, kw)),
            )


def test_requirements_never_name_slicers_own_packages_or_torch():
    names = {deps.requirement_name(r).lower() for r in deps.read_requirements(str(REQUIREMENTS))}
    assert names and not names & {"numpy", "simpleitk", "vtk", "torch"}


def test_missing_requirements_keeps_installed_and_protected_packages():
    installed = {"scipy": "1.11", "numpy": None, "SimpleITK": None}
    missing = deps.missing_requirements(["scipy>=1.10", "fill-voids>=2.0", "numpy>=2", "SimpleITK", "torch"],
                                        version_of=lambda name: installed.get(name))
    assert missing == ["fill-voids>=2.0"]


def test_environment_markers_are_honoured_and_dropped():
    missing = deps.missing_requirements(
        ["highdicom>=0.28; python_version >= '3.10'", "oldthing>=1; python_version < '3.0'", "scipy>=1.10"],
        version_of=lambda name: None)
    # a space-joined pip_install string (Slicer < 5.12) must not carry the marker's spaces
    assert missing == ["highdicom>=0.28", "scipy>=1.10"]
    assert deps.requirement_applies("scipy") and not deps.requirement_applies("x; python_version < '3.0'")
    with pytest.raises(ValueError, match="invalid environment marker"):
        deps.requirement_applies("x; python_versio >= '3'")


def test_nothing_missing_means_no_prompt(monkeypatch):
    monkeypatch.setattr(deps, "installed_version", lambda name: "1.0")
    fake = FakeSlicer(new_api=False)
    assert deps.ensure_python_packages(fake, str(REQUIREMENTS)) == []
    assert fake.calls == []


def test_old_slicer_confirms_once_then_pip_installs_with_constraints(monkeypatch):
    monkeypatch.setattr(deps, "installed_version",
                        lambda name: {"numpy": "1.26.4", "SimpleITK": "2.4.0", "scipy": "1.12"}.get(name))
    fake = FakeSlicer(new_api=False)
    installed = deps.ensure_python_packages(fake, str(REQUIREMENTS))
    assert "scipy>=1.10" not in installed and "fill-voids>=2.0" in installed
    assert [c[0] for c in fake.calls] == ["confirm", "pip_install"]
    command = fake.calls[1][1]  # pip_install(str): the only signature on Slicer 5.8 / 5.10
    assert isinstance(command, str) and "fill-voids>=2.0" in command
    constraints = command.split(" -c ")[1].strip()
    assert Path(constraints).read_text().split() == ["numpy==1.26.4", "SimpleITK==2.4.0"]
    os.unlink(constraints)


def test_old_slicer_declined_raises(monkeypatch):
    monkeypatch.setattr(deps, "installed_version", lambda name: None)
    fake = FakeSlicer(new_api=False, confirm=False)
    with pytest.raises(RuntimeError, match="installation declined"):
        deps.ensure_python_packages(fake, str(REQUIREMENTS))
    assert [c[0] for c in fake.calls] == ["confirm"]


def test_new_slicer_uses_pip_ensure_and_skips_protected_packages(monkeypatch):
    monkeypatch.setattr(deps, "installed_version", lambda name: None)
    fake = FakeSlicer(new_api=True)
    deps.ensure_python_packages(fake, str(REQUIREMENTS))
    (kind, reqs, kwargs), = fake.calls
    assert kind == "pip_ensure" and reqs == ["req-from", str(REQUIREMENTS)]
    assert {"numpy", "SimpleITK", "torch"} <= set(kwargs["skip_packages"])
    assert kwargs["prompt_install"] is True


def test_torch_comes_from_the_pytorch_extension(monkeypatch):
    monkeypatch.setattr(deps, "installed_version", lambda name: None)
    calls = []

    class Logic:
        def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None):
            calls.append((askConfirmation, torchVersionRequirement))
            return types.SimpleNamespace(__version__="2.5.0")

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=Logic))
    deps.ensure_torch()
    assert calls == [(True, ">=2.1")]
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # extension absent
    with pytest.raises(RuntimeError, match="PyTorch extension"):
        deps.ensure_torch()
