"""Write Resources/requirements.txt from the packages' pyproject.toml (the one source of truth).

Slicer pip-installs Resources/requirements.txt on first use (OrganSeg/OrganSegCommon/dependencies.py).
It must hold every run-time dependency of the two packages the extension ships (organseglib and
cudaaugment), except those Slicer provides and that must never be replaced, nor come from elsewhere
(``dependencies.NEVER_REPLACE``: numpy, SimpleITK, vtk; torch comes from the PyTorch extension).

    python scripts/sync_requirements.py          # rewrite Resources/requirements.txt
    python scripts/sync_requirements.py --check  # exit 1 and show the difference when it drifted
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECTS = (REPO / "OrganSegLib" / "pyproject.toml", REPO / "CUDAAugment" / "pyproject.toml")
REQUIREMENTS = REPO / "Resources" / "requirements.txt"
# (package folder, its pyproject, optional extras allowed to hold an import: torch comes from
# Slicer's PyTorch extension, cupy only where a GPU is)
PACKAGES = ((REPO / "OrganSegLib" / "organseglib", PYPROJECTS[0], ("torch",)),
            (REPO / "CUDAAugment" / "cudaaugment", PYPROJECTS[1], ("torch", "cuda")))
HEADER = """\
# GENERATED from OrganSegLib/pyproject.toml and CUDAAugment/pyproject.toml by
# scripts/sync_requirements.py: edit the pyproject dependencies, then run that script.
# Python packages OrganSeg installs into Slicer's Python on first use (after one confirmation).
# Left out on purpose: {never} (Slicer's own copies are never replaced; torch comes
# from the PyTorch extension, which picks the build for the GPU driver).
"""


def _never_replace() -> tuple:
    sys.path.insert(0, str(REPO / "OrganSeg"))
    try:
        from OrganSegCommon.dependencies import NEVER_REPLACE
    finally:
        sys.path.remove(str(REPO / "OrganSeg"))
    return tuple(NEVER_REPLACE)


def normal_name(requirement: str) -> str:
    """PEP 503 normalised distribution name of a requirement string."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)
    return re.sub(r"[-_.]+", "-", name).lower()


def project_dependencies(pyproject: Path) -> list:
    import tomllib  # Python >= 3.11: a developer tool, never run inside Slicer

    return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("dependencies", []))


def render_requirements(pyprojects=PYPROJECTS) -> str:
    """The requirements.txt text: run-time dependencies of every package, merged by name (first
    spelling kept, distinct version ranges joined), minus the never-replaced ones, sorted."""
    never = _never_replace()
    skip = {normal_name(n) for n in never}
    merged: dict = {}
    for pyproject in pyprojects:
        for requirement in project_dependencies(pyproject):
            key = normal_name(requirement)
            if key in skip:
                continue
            name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)
            spec = requirement.strip()[len(name):].strip()
            entry = merged.setdefault(key, [name, []])
            if spec and spec not in entry[1]:
                entry[1].append(spec)
    lines = [name + ",".join(specs) for name, specs in (merged[k] for k in sorted(merged))]
    return HEADER.format(never=", ".join(never)) + "\n".join(lines) + "\n"


# import name -> distribution name, where they differ
IMPORT_TO_DISTRIBUTION = {"cc3d": "connected-components-3d", "fill_voids": "fill-voids", "PIL": "pillow",
                          "cupy": "cupy-cuda12x", "cupyx": "cupy-cuda12x", "yaml": "PyYAML",
                          "skimage": "scikit-image", "sklearn": "scikit-learn", "pydicom": "pydicom"}
# packages shipped together in the extension (CMakeLists.txt installs both): not from PyPI
FIRST_PARTY = ("organseglib", "cudaaugment")


def third_party_imports(package_dir: Path) -> dict:
    """``{top-level module: [files importing it]}`` for every absolute import in a package (inside
    functions and ``try`` blocks too) that is neither the standard library nor first party."""
    import ast

    found: dict = {}
    for path in sorted(Path(package_dir).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                    continue
                found.setdefault(top, []).append(str(path))
    return found


def undeclared_imports(package_dir: Path, pyproject: Path, optional_extras=()) -> list:
    """``"module (distribution) in file"`` for each third-party import whose distribution is not
    among the pyproject's dependencies (or the named optional extras)."""
    import tomllib

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = {normal_name(r) for r in project.get("dependencies", [])}
    for extra in optional_extras:
        declared |= {normal_name(r) for r in project.get("optional-dependencies", {}).get(extra, [])}
    problems = []
    for module, files in sorted(third_party_imports(package_dir).items()):
        distribution = IMPORT_TO_DISTRIBUTION.get(module, module)
        if normal_name(distribution) not in declared:
            problems.append(f"{module} ({distribution}) in {files[0]}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file differs")
    args = parser.parse_args(argv)
    undeclared = [p for folder, pyproject, extras in PACKAGES
                  for p in undeclared_imports(folder, pyproject, extras)]
    if undeclared:
        print("imported but not declared in pyproject.toml dependencies:\n  " + "\n  ".join(undeclared))
        return 1
    wanted = render_requirements()
    current = REQUIREMENTS.read_text(encoding="utf-8") if REQUIREMENTS.exists() else ""
    if current == wanted:
        print(f"{REQUIREMENTS.relative_to(REPO)} is up to date")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                   "requirements.txt (now)", "requirements.txt (from pyproject)"))
        return 1
    REQUIREMENTS.write_text(wanted, encoding="utf-8")
    print(f"wrote {REQUIREMENTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
