"""Static checks of the Slicer extension (no Slicer needed): .ui widgets, parameter-node bindings,
``slicer.*`` calls against shared/slicer/API_FACTS.md, CMake file lists, the library boundary."""

from __future__ import annotations

import ast
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "OrganSeg"
UI_DIR = REPO / "Resources" / "UI"
API_FACTS = REPO.parent / "shared" / "slicer" / "API_FACTS.md"
MODULE_FILES = sorted(MODULE_DIR.rglob("*.py"))
# Slicer classes are named like these; any of them that API_FACTS.md names is allowed as slicer.<Class>.
CLASS_PREFIXES = ("vtkMRML", "qMRML", "vtkSlicer", "vtkSegment", "vtkBinaryLabelmap", "vtkClosedSurface",
                  "vtkOrientedImageData")


def _ui_widgets(path: Path) -> dict:
    """{widget name: (class, {dynamic property: value})} of a Qt Designer file."""
    widgets = {}
    for widget in ET.parse(path).getroot().iter("widget"):
        props = {}
        for prop in widget.findall("property"):
            value = prop.find("string")
            props[prop.get("name")] = value.text if value is not None else None
        widgets[widget.get("name")] = (widget.get("class"), props)
    return widgets


def _all_ui_widgets() -> dict:
    merged = {}
    for path in sorted(UI_DIR.glob("*.ui")):
        merged.update(_ui_widgets(path))
    return merged


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def test_ui_files_parse_and_declare_their_custom_widgets():
    paths = sorted(UI_DIR.glob("*.ui"))
    assert paths, f"no .ui file in {UI_DIR}"
    for path in paths:
        root = ET.parse(path).getroot()
        declared = {c.findtext("class") for c in root.iter("customwidget")}
        used = {w.get("class") for w in root.iter("widget")}
        custom = {c for c in used if c.startswith(("ctk", "qMRML", "qSlicer"))}
        assert custom <= declared, f"{path.name}: undeclared custom widgets {custom - declared}"
        names = [w.get("name") for w in root.iter("widget")]
        assert len(names) == len(set(names)), f"{path.name}: duplicate widget names"


def test_every_ui_widget_the_code_names_exists():
    widgets = _all_ui_widgets()
    named = set()
    for path in MODULE_FILES:
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Attribute) and _dotted(node.value) == "self.ui":
                named.add((node.attr, path.name))
    assert named, "the module code names no self.ui widget: is the parser looking at the right files?"
    missing = sorted(f"{name} ({where})" for name, where in named if name not in widgets)
    assert not missing, f"widgets used in code but absent from the .ui: {missing}"


def _parameter_node_fields() -> dict:
    """{field: annotation text} of every @parameterNodeWrapper class in the module code."""
    fields = {}
    for path in MODULE_FILES:
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.ClassDef) and any(
                    (_dotted(d) or "").endswith("parameterNodeWrapper") for d in node.decorator_list):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        fields[item.target.id] = ast.unparse(item.annotation)
    return fields


def test_every_slicer_parameter_name_is_a_parameter_node_field():
    fields = _parameter_node_fields()
    assert fields, "no @parameterNodeWrapper class found in OrganSeg/"
    bound = {props["SlicerParameterName"]: (name, cls) for name, (cls, props) in _all_ui_widgets().items()
             if props.get("SlicerParameterName")}
    unknown = sorted(f"{w} -> {p}" for p, (w, _) in bound.items() if p not in fields)
    assert not unknown, f"SlicerParameterName without a parameter-node field: {unknown}"
    unbound = sorted(set(fields) - set(bound))
    assert not unbound, f"parameter-node fields no widget shows: {unbound}"
    # Each binding pairs a widget class with a type the wrapper's GUI connectors handle.
    expected = {"bool": ("QCheckBox",), "int": ("QSpinBox",), "pathlib.Path": ("ctkPathLineEdit",)}
    for parameter, (widget, cls) in bound.items():
        annotation = fields[parameter]
        if annotation.startswith("slicer.vtkMRML"):
            assert cls == "qMRMLNodeComboBox", f"{widget}: node parameter {parameter} needs a qMRMLNodeComboBox"
        else:
            assert cls in expected.get(annotation, ()), f"{widget} ({cls}) cannot show {parameter}: {annotation}"


# Names under which module code holds the slicer module or its parts (dependencies.py takes the
# ``slicer`` module as an argument so it can be unit-tested; ``packaging`` is ``slicer.packaging``).
SLICER_ALIASES = {"slicer_module": "slicer", "packaging": "slicer.packaging"}


def _slicer_name(name: str | None) -> str | None:
    """``name`` with a known alias of the slicer module replaced by its real dotted name."""
    if not name:
        return None
    head, _, rest = name.partition(".")
    if head in SLICER_ALIASES and rest:
        return f"{SLICER_ALIASES[head]}.{rest}"
    return name


def _slicer_calls() -> list:
    """(dotted name, file, line) of every call whose callee starts with ``slicer.`` (or an alias of
    it, see SLICER_ALIASES), plus names imported ``from slicer.X import Y``."""
    found = []
    for path in MODULE_FILES:
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Call):
                name = _slicer_name(_dotted(node.func))
                if name and name.startswith("slicer."):
                    found.append((name, path.name, node.lineno))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("slicer"):
                for alias in node.names:
                    found.append((f"{node.module}.{alias.name}", path.name, node.lineno))
    return found


def _documented(name: str, facts: str) -> bool:
    """A chain is documented when API_FACTS.md has it verbatim, or names its root
    (``slicer.util``, ``slicer.mrmlScene``, ``slicer/ScriptedLoadableModule.py``, a Slicer class ...)
    and its final member."""
    if name in facts:
        return True
    parts = name.split(".")
    root, last = ".".join(parts[:2]), parts[-1]
    root_known = (root in facts or root.replace(".", "/") in facts  # a module named by its file path
                  or (parts[1].startswith(CLASS_PREFIXES) and parts[1] in facts))
    return root_known and re.search(rf"\b{re.escape(last)}\b", facts) is not None


def test_every_slicer_call_is_in_api_facts():
    if not API_FACTS.exists():
        pytest.skip(f"{API_FACTS} is absent (it lives in ../shared beside the repository)")
    facts = API_FACTS.read_text(encoding="utf-8")
    calls = _slicer_calls()
    assert len(calls) > 10, "too few slicer.* calls found: is the parser looking at the right files?"
    undocumented = sorted({f"{n} ({f}:{line})" for n, f, line in calls if not _documented(n, facts)})
    assert not undocumented, f"slicer.* names not in API_FACTS.md: {undocumented}"


def test_no_deprecated_or_nonexistent_slicer_names():
    """The traps API_FACTS.md lists: never the buggy deprecated master-representation call, the
    pre-5.2 master-volume name, a non-existent SetSegmentTerminology or ExportSegmentsBinaryLabelmapRepresentation,
    the deprecated arrayFromSegment, or launchConsoleProcess (whose blocking= exists only from 5.12)."""
    banned = {"SetMasterRepresentationToBinaryLabelmap", "setMasterVolumeNode", "SetSegmentTerminology",
              "arrayFromSegment", "ExportSegmentsBinaryLabelmapRepresentation", "launchConsoleProcess"}
    used = []
    for path in MODULE_FILES:
        for node in ast.walk(_parse(path)):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in banned:
                used.append(f"{path.name}:{node.lineno}: {name}")
    assert not used, used


def _cmake_list(text: str, variable: str) -> list:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"no set({variable} ...) in CMake"
    return [item for item in match.group(1).split() if not item.startswith("#")]


def test_cmake_lists_every_module_file_and_resource():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = [s.replace("${MODULE_NAME}", "OrganSeg") for s in _cmake_list(cmake, "MODULE_PYTHON_SCRIPTS")]
    for script in scripts:
        assert (MODULE_DIR / script).is_file(), f"CMake lists missing script {script}"
    on_disk = {str(p.relative_to(MODULE_DIR)) for p in MODULE_FILES}
    assert on_disk == set(scripts), f"module files not in CMake SCRIPTS: {sorted(on_disk - set(scripts))}"
    for resource in _cmake_list(cmake, "MODULE_RESOURCES"):
        resource = resource.replace("${MODULE_NAME}", "OrganSeg")
        assert (REPO / "Resources" / resource).is_file(), f"CMake lists missing resource {resource}"
    assert "slicerMacroBuildScriptedModule(" in cmake
    assert re.search(r"if\(BUILD_TESTING\).*slicer_add_python_unittest\(SCRIPT \$\{MODULE_NAME\}\.py\)", cmake, re.S)


def test_top_level_cmake_has_the_extension_metadata():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(rf"set\({variable} \S", text), variable
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in text
    assert re.search(r'set\(EXTENSION_DEPENDS "?PyTorch"?\)', text)
    order = [text.index(s) for s in ("project(OrganSeg)", "find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                                      "add_subdirectory(OrganSeg)", "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
                                      "include(${Slicer_EXTENSION_CPACK})")]
    assert order == sorted(order)
    for package in ("OrganSegLib/organseglib", "CUDAAugment/cudaaugment"):
        assert package in text and (REPO / package / "__init__.py").is_file()
    assert text.count("(") == text.count(")")
    # the icon and screenshot URLs point at files of this repository
    for variable in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        url = re.search(rf'set\({variable} "([^"]+)"\)', text).group(1)
        relative = url.split("/main/", 1)[1]
        assert (REPO / relative).is_file(), f"{variable} names {relative}, which is not in the repository"


def test_icon_is_a_128_pixel_png_where_slicer_looks_for_it():
    # ScriptedLoadableModule.__init__ sets parent.icon from <dir of OrganSeg.py>/Resources/Icons/OrganSeg.png
    # (or .svg): the source-tree load uses this file, the build installs it at the same relative place.
    icon = REPO / "OrganSeg" / "Resources" / "Icons" / "OrganSeg.png"
    data = icon.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (128, 128)
    assert not (REPO / "Resources" / "Icons" / "OrganSeg.png").exists(), "one icon, not two copies to drift"
    cmake = (REPO / "OrganSeg" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"RESOURCES \$\{MODULE_PYTHON_RESOURCES\}", cmake)
    assert "Resources/Icons/${MODULE_NAME}.png" in cmake


def test_organseglib_imports_no_qt_or_slicer():
    banned = {"qt", "ctk", "slicer", "vtk", "PythonQt", "PyQt5", "PySide2", "PySide6", "__main__"}
    offenders = []
    for path in sorted((REPO / "OrganSegLib" / "organseglib").rglob("*.py")):
        for node in ast.walk(_parse(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in banned]
    assert not offenders, offenders


def test_module_code_parses_as_python_3_9():
    """Slicer 5.8 still ships Python 3.9: no 3.10+ syntax (match, parenthesised with-items ...)."""
    files = MODULE_FILES + [REPO / "OrganSegLib" / "organseglib" / "training_set.py"]
    for path in files:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
    # `X | Y` types are only safe inside annotations, which `from __future__ import annotations` defers;
    # OrganSeg.py must not use that import (the parameter-node wrapper evaluates its annotations).
    for path in MODULE_FILES:
        tree = _parse(path)
        future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body)
        if path.name == "OrganSeg.py":
            assert not future, "OrganSeg.py: the @parameterNodeWrapper annotations must stay real types"
        for node in ast.walk(tree):
            for annotation in ([node.returns] + [a.annotation for a in node.args.args]
                               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else
                               [node.annotation] if isinstance(node, ast.AnnAssign) else []):
                if annotation is not None and isinstance(annotation, ast.BinOp) and not future:
                    pytest.fail(f"{path.name}:{node.lineno}: `X | Y` annotation needs Python 3.10")
