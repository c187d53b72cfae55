"""Dependencies have one source of truth (issue 13): the pyproject files.

Resources/requirements.txt (what Slicer pip-installs on first use) is generated from them by
scripts/sync_requirements.py, and every third-party module the packages import is declared there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

if sys.version_info < (3, 11):
    pytest.skip("the checks read pyproject.toml with tomllib (Python >= 3.11)", allow_module_level=True)


@pytest.fixture(scope="module")
def sync():
    spec = importlib.util.spec_from_file_location("sync_requirements", REPO / "scripts" / "sync_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requirements_txt_is_generated_from_the_pyprojects(sync):
    current = (REPO / "Resources" / "requirements.txt").read_text(encoding="utf-8")
    assert current == sync.render_requirements(), (
        "Resources/requirements.txt drifted from the pyproject dependencies: run python scripts/sync_requirements.py")


def test_requirements_hold_every_runtime_dependency_but_slicers_own(sync):
    sys.path.insert(0, str(REPO / "OrganSeg"))
    from OrganSegCommon.dependencies import NEVER_REPLACE, read_requirements, requirement_name

    names = {sync.normal_name(requirement_name(r)) for r in read_requirements(str(REPO / "Resources" / "requirements.txt"))}
    # the examples: the learning curve (matplotlib), pillow, and slicerio for every .seg.nrrd
    assert {"matplotlib", "pillow", "slicerio", "highdicom", "pydicom"} <= names
    assert not names & {sync.normal_name(n) for n in NEVER_REPLACE}
    for pyproject in sync.PYPROJECTS:
        for requirement in sync.project_dependencies(pyproject):
            key = sync.normal_name(requirement)
            assert key in names or key in {sync.normal_name(n) for n in NEVER_REPLACE}, (pyproject, requirement)


@pytest.mark.parametrize("package", ["organseglib", "cudaaugment"])
def test_every_third_party_import_is_declared(sync, package):
    folder, pyproject, extras = next(p for p in sync.PACKAGES if p[0].name == package)
    assert sync.third_party_imports(folder), "the scan found no import at all"
    assert sync.undeclared_imports(folder, pyproject, extras) == []


def test_the_scan_finds_imports_inside_functions_and_try_blocks(sync, tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("import os\nimport numpy as np\nfrom . import b\n"
                                  "def f():\n    import yaml\n"
                                  "try:\n    from PIL import Image\nexcept ImportError:\n    pass\n")
    (package / "b.py").write_text("from organseglib.io import read_ct\nimport cc3d.sub\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "pkg"\ndependencies = ["numpy>=1", "pillow"]\n'
                         '[project.optional-dependencies]\nextra = ["connected-components-3d"]\n')
    assert set(sync.third_party_imports(package)) == {"numpy", "yaml", "PIL", "cc3d"}
    problems = sync.undeclared_imports(package, pyproject)
    assert [p.split(" in ")[0] for p in problems] == ["cc3d (connected-components-3d)", "yaml (PyYAML)"]
    assert [p.split(" in ")[0] for p in sync.undeclared_imports(package, pyproject, ("extra",))] == ["yaml (PyYAML)"]


def test_check_mode_reports_drift(sync, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "requirements.txt"
    copy.write_text((REPO / "Resources" / "requirements.txt").read_text().replace("matplotlib>=3.6\n", ""))
    monkeypatch.setattr(sync, "REQUIREMENTS", copy)
    monkeypatch.setattr(sync, "REPO", tmp_path)
    assert sync.main(["--check"]) == 1
    assert "+matplotlib>=3.6" in capsys.readouterr().out
    assert sync.main([]) == 0 and copy.read_text() == sync.render_requirements()
    assert sync.main(["--check"]) == 0
