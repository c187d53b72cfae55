"""One of each concept: the training-set naming rule, the segment-to-organ rule, the CLI defaults
(the config dataclasses'), and no second class of a name."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from organseglib.cli import build_parser
from organseglib.organs import organ_by_key, organ_for_segment, terminology_type_code

REPO = Path(__file__).resolve().parents[2]


# --- training-set layout --------------------------------------------------------------------------
@pytest.mark.parametrize("name, parsed", [
    ("volume-7.nii.gz", ("volume", "7", "nii.gz", "labels-7.nii.gz")),
    ("labels-12.nrrd", ("labels", "12", "nrrd", "volume-12.nrrd")),
    ("volume-0.mha", ("volume", "0", "mha", "labels-0.mha")),
    ("volume-3.nii", ("volume", "3", "nii", "labels-3.nii")),
    ("volume-a.nii.gz", None), ("volume-1.png", None), ("seg-1.nii.gz", None), ("volume-1.nii.gz.tmp", None),
])
def test_one_rule_for_case_file_names(name, parsed):
    from organseglib.training_set import parse_case_file

    got = parse_case_file(name)
    assert (None if got is None else (got.kind, got.id, got.ext, got.partner)) == parsed


def test_exporter_and_loader_agree_on_which_files_are_cases(tmp_path, tiny_abdomen):
    """A ``volume-N.nrrd`` pair is a case for the loader and takes an id for the exporter; a file
    outside the rule is neither."""
    from organseglib.io import write_labels, write_volume
    from organseglib.training.dataset import find_cases
    from organseglib.training_set import next_case_id, used_case_ids

    write_volume(tiny_abdomen.ct, tmp_path / "volume-4.nrrd")
    write_labels(tiny_abdomen.labels, tmp_path / "labels-4.nrrd")
    (tmp_path / "volume-x.nii.gz").write_bytes(b"not a case")
    assert [(c.case_id, c.labels.name) for c in find_cases(tmp_path)] == [("4", "labels-4.nrrd")]
    assert used_case_ids(tmp_path) == {4} and next_case_id(tmp_path) == 5


def test_one_class_per_name_in_the_library():
    """No two classes of organseglib share a name (there were two ``TrainingCase``)."""
    seen: dict = {}
    for path in sorted((REPO / "OrganSegLib" / "organseglib").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


# --- which organ is this segment -------------------------------------------------------------------
def test_organ_for_segment_by_terminology_first_then_name():
    liver = organ_by_key("liver")
    assert terminology_type_code(liver.terminology_entry) == liver.type[1]
    assert organ_for_segment("Segment_1", liver.type[1]) == liver  # the code wins over a meaningless name
    assert organ_for_segment("lungs", liver.type[1]) == liver
    assert organ_for_segment(" Lung ") == organ_by_key("lungs")  # the terminology meaning, any case
    assert organ_for_segment("kidneys") == organ_by_key("kidneys")
    assert organ_for_segment("Tumor") is None and organ_for_segment(None) is None
    assert organ_for_segment("Tumor", "0000") is None
    assert terminology_type_code("") is None and terminology_type_code("a~b") is None
    assert terminology_type_code("ctx~SCT^1^x~SCT^^Liver~^^") is None


def test_seg_nrrd_reader_and_slicer_bridge_use_the_one_rule():
    sources = {"io.py": (REPO / "OrganSegLib" / "organseglib" / "io.py").read_text(encoding="utf-8"),
               "mrml_bridge.py": (REPO / "OrganSeg" / "OrganSegCommon" / "mrml_bridge.py").read_text(encoding="utf-8")}
    for name, text in sources.items():
        assert "organ_for_segment(" in text, name
        assert "organ.type[2].lower()" not in text, f"{name} matches segment names itself"


# --- the Slicer module's organs are the table's -----------------------------------------------------
def test_slicer_module_has_a_corrected_checkbox_per_organ_of_the_table_and_no_list_of_its_own():
    import xml.etree.ElementTree as ET

    from organseglib.organs import organ_table

    source = (REPO / "OrganSeg" / "OrganSeg.py").read_text(encoding="utf-8")
    ui = ET.parse(REPO / "Resources" / "UI" / "OrganSeg.ui").getroot()
    bound = {w.findtext("property[@name='SlicerParameterName']/string") for w in ui.iter("widget")}
    for organ in organ_table():
        name = "corrected" + organ.key.capitalize()
        assert f"    {name}: bool = False" in source and name in bound, name
    assert "ORGAN_KEYS" not in source and '("lungs", "liver", "bone", "kidneys", "bladder")' not in source


# --- CLI defaults are the config dataclasses' ------------------------------------------------------
def _parse(*argv):
    return build_parser().parse_args(list(argv))


def test_segment_cli_defaults_are_segment_config_defaults():
    from organseglib.commands.segment import segment_config
    from organseglib.segment import SegmentConfig

    assert segment_config(_parse("segment", "ct.nii.gz", "-o", "out.nii.gz")) == SegmentConfig()
    mirrored = segment_config(_parse("segment", "ct.nii.gz", "-o", "out.nii.gz", "--mirror"))
    assert mirrored == SegmentConfig(flip_axes=(2,)) and mirrored.flip_one_sided == ("liver",)


def test_train_cli_defaults_are_train_config_defaults():
    from organseglib.commands.train import CONFIG_FIELDS, config_defaults, train_config
    from organseglib.training.trainer import TrainConfig

    args = _parse("train", "--data", "d", "--out", "m")
    assert train_config(args) == TrainConfig()
    assert all(getattr(args, dest) is None for dest in CONFIG_FIELDS)  # nothing restated in the parser
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(CONFIG_FIELDS.values()) <= fields
    given = train_config(_parse("train", "--data", "d", "--out", "m", "--iterations", "7", "--crop", "32", "32", "40"))
    assert given == dataclasses.replace(TrainConfig(), iterations=7, crop_shape=(32, 32, 40))
    assert config_defaults()["iterations"] == TrainConfig().iterations


def test_train_help_shows_the_dataclass_defaults(capsys):
    from organseglib.training.trainer import TrainConfig

    with pytest.raises(SystemExit):
        _parse("train", "--help")
    text = " ".join(capsys.readouterr().out.split())
    config = TrainConfig()
    assert f"optimizer steps (default {config.iterations})" in text
    assert f"training crop in voxels (default {' '.join(map(str, config.crop_shape))}" in text
    assert "(default None)" not in text


# --- dead code stays out ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["with_overrides", "write_bytes_atomic", "val_dice", "validation_dice"])
def test_removed_names_stay_removed(name):
    shipped = [*(REPO / "OrganSegLib" / "organseglib").rglob("*.py"), *(REPO / "OrganSeg").rglob("*.py"),
               *(REPO / "CUDAAugment" / "cudaaugment").rglob("*.py")]
    assert [str(p) for p in shipped if name in p.read_text(encoding="utf-8")] == []


def test_train_command_reads_config_options_only_through_the_config():
    """An option whose default is TrainConfig's is None in ``args`` when not given: ``run`` must read
    ``config.<field>`` (``args.seed`` once made the train/validation split random)."""
    from organseglib.commands.train import CONFIG_FIELDS
    from organseglib.errors import InputError
    from organseglib.training.trainer import split_cases

    tree = ast.parse((REPO / "OrganSegLib" / "organseglib" / "commands" / "train.py").read_text(encoding="utf-8"))
    run = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run")
    used = {n.attr for n in ast.walk(run) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "args"}
    assert used & set(CONFIG_FIELDS) == set()
    with pytest.raises(InputError, match="seed must be a whole number"):
        split_cases([1, 2], 0.5, None)
