"""organseglib.training_set: CT-ORG layout export with a manifest (pure library, no Slicer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from organseglib.errors import GeometryError, InputError, LabelValueError, OutputExistsError
from organseglib.io import read_labels, read_volume, write_labels, write_volume
from organseglib.training_set import export_training_case, next_case_id, read_manifest
from organseglib.volume import Volume


@pytest.fixture
def case():
    matrix = np.array([[0.0, -0.9, 0.0, 5.0], [0.8, 0.0, 0.0, -3.0], [0.0, 0.0, 2.0, 7.0], [0, 0, 0, 1]])
    ct = Volume(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8) - 1000, matrix)
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:3, 2:5, 2:6] = 3
    labels[4:6, 0:2, 0:3] = 5
    return ct, ct.with_array(labels)


def test_export_writes_ct_org_layout_and_manifest(case, tmp_path):
    ct, labels = case
    entry = export_training_case(ct, labels, tmp_path / "set", source="/scans/a.nrrd", corrected_organs=["Lungs", "bone"],
                                 date="2026-11-22T10:00:00+00:00")
    folder = tmp_path / "set"
    assert entry.id == 0 and entry.volume == "volume-0.nii.gz" and entry.labels == "labels-0.nii.gz"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == {"cases": [{"id": 0, "volume": "volume-0.nii.gz", "labels": "labels-0.nii.gz",
                                   "source": "/scans/a.nrrd", "date": "2026-11-22T10:00:00+00:00",
                                   "corrected_organs": ["lungs", "bone"]}]}
    back_ct, back_labels = read_volume(folder / "volume-0.nii.gz"), read_labels(folder / "labels-0.nii.gz")
    assert back_ct.array.dtype == np.int16 and np.array_equal(back_ct.array, ct.array)
    assert back_labels.array.dtype == np.uint8 and np.array_equal(back_labels.array, labels.array)
    assert back_ct.same_grid(ct, atol=1e-5) and back_labels.same_grid(ct, atol=1e-5)
    # the CT-ORG layout, plus the lock file that serialises concurrent exports
    assert sorted(p.name for p in folder.iterdir()) == [".organseg-training-set.lock", "labels-0.nii.gz", "manifest.json",
                                                         "volume-0.nii.gz"]


def test_next_id_and_no_silent_overwrite(case, tmp_path):
    ct, labels = case
    ids = [export_training_case(ct, labels, tmp_path, source=f"s{i}").id for i in range(3)]
    assert ids == [0, 1, 2]
    with pytest.raises(OutputExistsError, match="case 1 already exists"):
        export_training_case(ct, labels, tmp_path, source="again", case_id=1)
    with pytest.raises(InputError, match="needs the case_id"):
        export_training_case(ct, labels, tmp_path, source="again", overwrite=True)
    empty = labels.with_array(np.zeros(labels.shape, np.uint8))
    export_training_case(ct, empty, tmp_path, source="replaced", case_id=1, overwrite=True)
    cases = read_manifest(tmp_path)
    assert [(c.id, c.source) for c in cases] == [(0, "s0"), (1, "replaced"), (2, "s2")]
    assert not read_labels(tmp_path / "labels-1.nii.gz").array.any()
    # A deleted case's id is never reused: the next id follows the largest.
    (tmp_path / "volume-2.nii.gz").unlink()
    (tmp_path / "labels-2.nii.gz").unlink()
    assert next_case_id(tmp_path) == 3


def test_existing_ct_org_files_are_listed_when_the_manifest_is_created(case, tmp_path):
    """Once manifest.json exists the training loader reads only it: CT-ORG files already in the
    folder must be adopted, not hidden."""
    ct, labels = case
    for n in (0, 7):
        write_volume(ct, tmp_path / f"volume-{n}.nii.gz")
        write_labels(labels, tmp_path / f"labels-{n}.nii.gz")
    entry = export_training_case(ct, labels, tmp_path, source="slicer")
    assert entry.id == 8
    cases = read_manifest(tmp_path)
    assert [(c.id, c.source) for c in cases] == [(0, "existing file"), (7, "existing file"), (8, "slicer")]


def test_bad_inputs_are_refused_before_writing(case, tmp_path):
    ct, labels = case
    with pytest.raises(GeometryError):
        export_training_case(ct, Volume(labels.array, np.eye(4)), tmp_path, source="x")
    with pytest.raises(LabelValueError):
        export_training_case(ct, labels.with_array(np.full(labels.shape, 6, np.uint8)), tmp_path, source="x")
    with pytest.raises(InputError, match="unknown organ"):
        export_training_case(ct, labels, tmp_path, source="x", corrected_organs=["spleen"])
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(InputError, match="not a training-set manifest"):
        export_training_case(ct, labels, tmp_path, source="x")


def test_exported_folder_is_read_by_the_training_loader(case, tmp_path):
    dataset = pytest.importorskip("organseglib.training.dataset", reason="training loader not available")
    ct, labels = case
    export_training_case(ct, labels, tmp_path, source="a")
    export_training_case(ct, labels, tmp_path, source="b")
    found = dataset.find_cases(tmp_path)
    assert [c.case_id for c in found] == ["0", "1"]
    assert found[1].labels == tmp_path / "labels-1.nii.gz"


def test_concurrent_exports_get_distinct_cases_and_all_reach_the_manifest(case, tmp_path, monkeypatch):
    """Two Slicers (or a script beside the GUI) saving at once: the id choice and the manifest update
    are serialised by a folder lock. The race window is widened on purpose: without the lock every
    thread would pick the same id and overwrite one another's case."""
    import threading
    import time

    from organseglib import training_set

    real_next = training_set.next_case_id

    def slow_next(folder):
        chosen = real_next(folder)
        time.sleep(0.2)
        return chosen

    monkeypatch.setattr(training_set, "next_case_id", slow_next)
    ct, labels = case
    errors = []

    def export(n):
        try:
            export_training_case(ct, labels, tmp_path / "set", source=f"thread {n}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=export, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    entries = read_manifest(tmp_path / "set")
    assert sorted(e.id for e in entries) == [0, 1, 2, 3]
    assert sorted(e.source for e in entries) == [f"thread {n}" for n in range(4)]
