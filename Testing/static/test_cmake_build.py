"""Configure, build and install the extension's CMake against a stand-in Slicer package.

Slicer itself cannot be built here, so ``find_package(Slicer)`` finds a small fake that defines the
variables and macros the extension uses (``slicerMacroBuildScriptedModule`` copying SCRIPTS as the real
macro does, ``slicer_add_python_unittest`` recording its script). What is real and checked: the
extension's own CMake runs, the installed tree has the module, its package, its resources, and
working copies of ``organseglib`` (organ table as a real file, no dangling links) and ``cudaaugment``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB_DIR = "lib/Slicer-5.8/qt-scripted-modules"

FAKE_CONFIG = textwrap.dedent(f"""
    set(Slicer_FOUND TRUE)
    set(Slicer_USE_FILE ${{CMAKE_CURRENT_LIST_DIR}}/UseSlicer.cmake)
    set(Slicer_EXTENSION_GENERATE_CONFIG ${{CMAKE_CURRENT_LIST_DIR}}/Empty.cmake)
    set(Slicer_EXTENSION_CPACK ${{CMAKE_CURRENT_LIST_DIR}}/Empty.cmake)
    set(Slicer_QTSCRIPTEDMODULES_LIB_DIR {LIB_DIR})
    set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR {LIB_DIR})
""")

FAKE_USE = textwrap.dedent("""
    include(CMakeParseArguments)
    macro(slicerMacroBuildScriptedModule)
      cmake_parse_arguments(_M "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
      if(NOT _M_NAME OR NOT _M_SCRIPTS)
        message(FATAL_ERROR "slicerMacroBuildScriptedModule needs NAME and SCRIPTS")
      endif()
      foreach(_f ${_M_SCRIPTS} ${_M_RESOURCES})
        if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${_f})
          message(FATAL_ERROR "listed file ${_f} does not exist")
        endif()
        get_filename_component(_d ${_f} DIRECTORY)
        configure_file(${CMAKE_CURRENT_SOURCE_DIR}/${_f} ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/${_f} COPYONLY)
        install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/${_f} DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/${_d})
      endforeach()
    endmacro()
    function(slicer_add_python_unittest)
      cmake_parse_arguments(_T "" "SCRIPT;SLICER_ARGS" "" ${ARGN})
      file(APPEND ${CMAKE_BINARY_DIR}/python_unittests.txt "${_T_SCRIPT}\\n")
    endfunction()
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    root = tmp_path_factory.mktemp("cmake")
    fake = root / "fake-slicer"
    fake.mkdir()
    (fake / "SlicerConfig.cmake").write_text(FAKE_CONFIG)
    (fake / "UseSlicer.cmake").write_text(FAKE_USE)
    (fake / "Empty.cmake").write_text("")
    build, prefix = root / "build", root / "install"

    def run(*args):
        result = subprocess.run([cmake, *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"cmake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"

    run("-S", str(REPO), "-B", str(build), f"-DSlicer_DIR={fake}", "-DBUILD_TESTING=ON")
    run("--build", str(build))
    run("--install", str(build), "--prefix", str(prefix))
    return build, prefix / LIB_DIR


def test_module_package_and_resources_are_installed(installed):
    build, lib = installed
    for relative in ("OrganSeg.py", "OrganSegCommon/__init__.py", "OrganSegCommon/mrml_bridge.py",
                     "Resources/UI/OrganSeg.ui", "Resources/Icons/OrganSeg.png", "Resources/requirements.txt",
                     "organseglib/__init__.py", "organseglib/data/organs.json", "cudaaugment/__init__.py"):
        assert (lib / relative).is_file(), relative
    assert (build / "python_unittests.txt").read_text().split() == ["OrganSeg.py"]
    links = [p for p in lib.rglob("*") if p.is_symlink()]
    assert links == [], f"installed symlinks (dangling once packaged): {links}"
    assert not list(lib.rglob("__pycache__"))
    # the icon sits where ScriptedLoadableModule looks: <dir of OrganSeg.py>/Resources/Icons/OrganSeg.png
    icon = lib / "Resources" / "Icons" / "OrganSeg.png"
    assert icon.read_bytes() == (REPO / "OrganSeg" / "Resources" / "Icons" / "OrganSeg.png").read_bytes()


def test_installed_library_loads_its_organ_table(installed):
    _, lib = installed
    code = ("import organseglib, cudaaugment; from organseglib.organs import organ_table; "
            "print(organseglib.__file__); print(','.join(o.key for o in organ_table()))")
    env = dict(os.environ, PYTHONPATH=str(lib))
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(lib)!r}); {code}"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    where, keys = result.stdout.split()
    assert where.startswith(str(lib))
    assert keys == "liver,bladder,lungs,kidneys,bone"


def test_installed_module_finds_its_resources_without_the_source_tree(installed):
    _, lib = installed
    code = ("import sys; sys.path.insert(0, %r); from OrganSegCommon import resource_path; "
            "print(resource_path(%r, 'UI/OrganSeg.ui'))" % (str(lib), str(lib)))
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(lib / "Resources" / "UI" / "OrganSeg.ui")
