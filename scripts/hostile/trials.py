"""Issue 19's hostile and careless trials, in groups; each group builds its inputs and returns its trials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from organseglib.io import read_volume, write_volume

from .inputs import Files, dicom_series, tiny_package
from .runner import TINY_TRAIN, Trial, organseg


def output_trials(f: Files) -> list:
    w, ct, m, s = f.work, f.ct, f.masks, f.set
    pkg = tiny_package(f, "pkg")
    link = w / "report-link.json"
    link.symlink_to(m / "liver.nii.gz")
    (w / "demo-in").mkdir()
    shutil.copy(ct, w / "demo-in" / "ct.nii.gz")
    hard = w / "hard-ct.nii.gz"
    shutil.copy(ct, w / "ct-copy.nii.gz")
    os.link(w / "ct-copy.nii.gz", hard)
    imp = ["import-labels", m, "--ct", ct, "-o"]
    return [
        Trial("import --report MASKS/liver.nii.gz", imp + [w / "new-set", "--report", m / "liver.nii.gz"],
              ("input folder",), [m, ct], [w / "new-set"]),
        Trial("import --report SET/labels-0 (existing case)", imp + [s, "--report", s / "labels-0.nii.gz"],
              ("training set uses",), [s, m]),
        Trial("import --report SET/volume-1 (the case being added)", imp + [s, "--report", s / "volume-1.nii.gz"],
              ("training set uses",), [s, m], [s / "volume-1.nii.gz"]),
        Trial("import --report SET/lock", imp + [s, "--report", s / ".organseg-training-set.lock"],
              ("training set uses",), [s, m]),
        Trial("import --report SET/manifest.json", imp + [s, "--report", s / "manifest.json"], ("training set uses",), [s]),
        Trial("import --report via a symlink to a mask", imp + [w / "new-set", "--report", link], ("input folder",),
              [m], [w / "new-set"]),
        Trial("import --report MASKS/../masks/liver.nii.gz", imp + [w / "new-set", "--report",
                                                                   m / ".." / "masks" / "liver.nii.gz"],
              ("input folder",), [m], [w / "new-set"]),
        Trial("import -o MASKS", imp + [m], ("is also an input",), [m]),
        Trial("import -o MASKS/sub", imp + [m / "sub"], ("input folder",), [m], [m / "sub"]),
        Trial("segment --report PKG/card.json", ["segment", ct, "-o", w / "x.nii.gz", "--model", pkg, "--report",
                                                 pkg / "card.json", "--progress", "none"],
              ("input folder",), [pkg, ct], [w / "x.nii.gz"]),
        Trial("segment -o PKG/labels.nii.gz", ["segment", ct, "-o", pkg / "labels.nii.gz", "--model", pkg,
                                               "--progress", "none"], ("input folder",), [pkg]),
        Trial("segment -o CT", ["segment", ct, "-o", ct, "--progress", "none"], ("is also an input",), [ct]),
        Trial("autolabel -o a hard link of the CT", ["autolabel", hard, "-o", w / "ct-copy.nii.gz", "--progress", "none"],
              ("hard link",), [hard]),
        Trial("train --out PKG --init PKG --overwrite", ["train", "--data", s, "--out", pkg, "--init", pkg,
                                                         "--overwrite", "--iterations", "1", *TINY_TRAIN],
              ("is also an input",), [pkg, s, w / "pkg.training"]),
        Trial("train --out SET/model", ["train", "--data", s, "--out", s / "model", "--iterations", "1", *TINY_TRAIN],
              ("input folder",), [s], [s / "model", s / "model.training"]),
        Trial("train --out X --init X/pkg --overwrite", ["train", "--data", "phantoms:1", "--out", w, "--init", pkg,
                                                         "--overwrite", "--iterations", "1", *TINY_TRAIN],
              ("holds the input",), [pkg]),
        Trial("evaluate --json REF", ["evaluate", f.labels_file, f.labels_file, "--json", f.labels_file],
              ("is also an input",), [f.labels_file]),
        Trial("evaluate --set --json SET/manifest.json", ["evaluate", "--set", s, "--pred-dir", s, "--json",
                                                          s / "manifest.json"], ("is also an input",), [s]),
        Trial("evaluate --set --model --save-pred SET", ["evaluate", "--set", s, "--model", pkg, "--save-pred", s],
              ("is also an input",), [s, pkg]),
        Trial("train --out SET (the data folder)", ["train", "--data", s, "--out", s, "--overwrite", "--iterations", "1",
                                                    *TINY_TRAIN], ("is also an input",), [s]),
        Trial("train --cache inside --data", ["train", "--data", s, "--out", w / "cache-model", "--cache", s / "cache",
                                              "--iterations", "1", *TINY_TRAIN], ("input folder",), [s],
              [s / "cache", w / "cache-model.training"]),
        Trial("demo --out PKG", ["demo", "--model", pkg, "--out", pkg, "--progress", "none"], ("input",), [pkg]),
        Trial("demo --input X/ct.nii.gz --out X (demo writes ct.nii.gz)", ["demo", "--input", w / "demo-in" / "ct.nii.gz",
                                                                           "--out", w / "demo-in", "--progress", "none"],
              ("is also an input",), [w / "demo-in"]),
        Trial("evaluate --set --csv inside --pred-dir", ["evaluate", "--set", s, "--pred-dir", m, "--csv", m / "s.csv"],
              ("input folder",), [s, m], [m / "s.csv"]),
    ]


def refusal_creates_nothing_trials(f: Files) -> list:
    w = f.work
    zero = f.mask_folder("zero-masks", {"liver.nii.gz": np.zeros(f.labels.shape, np.uint8)})
    zero_set = w / "zero-set"
    zero_set.mkdir()
    shutil.copy(f.ct, zero_set / "volume-0.nii.gz")
    write_volume(f.labels.with_array(np.zeros(f.labels.shape, np.uint8)), zero_set / "labels-0.nii.gz")
    return [
        Trial("refused import leaves no -o folder", ["import-labels", f.masks, "--ct", f.ct, "-o", w / "a" / "b",
                                                     "--report", w / "nowhere" / "r.json"],
              ("does not exist",), [f.masks], [w / "a"]),
        Trial("import of a folder whose case annotates liver, all empty: accepted", ["import-labels", zero, "--ct", f.ct,
                                                                                     "-o", w / "zero-import"],
              check=lambda r: "" if r.rc == 0 else f"exit {r.rc}: {r.err[-200:]}"),
        Trial("train on all-zero labels refused, no MODEL.training", ["train", "--data", zero_set, "--out",
                                                                       w / "zero-model", "--iterations", "1", *TINY_TRAIN],
              ("all background",), [zero_set], [w / "zero-model", w / "zero-model.training"]),
    ]


def mask_trials(f: Files) -> list:
    w, liver = f.work, f.organ(1)
    prob = np.where(liver > 0, 0.95, 0.02).astype(np.float32)
    rng = np.random.default_rng(0)
    noisy = np.where(liver > 0, 255, rng.integers(0, 20, liver.shape)).astype(np.uint8)
    multi = f.labels.array.astype(np.uint8)
    overlap_kidney = f.organ(4).copy()
    overlap_kidney[liver > 0] = 1  # the kidney mask drawn over the whole liver
    kidneys_and_liver = {"liver.nii.gz": liver, "kidneys.nii.gz": overlap_kidney}

    def mapping(name, text):
        path = w / name
        path.write_text(text)
        return path

    def labels_of(set_folder, case=0):
        return read_volume(Path(set_folder) / f"labels-{case}.nii.gz").array

    def multi_ok(r):
        if r.rc != 0:
            return f"exit {r.rc}: {r.err[-300:]}"
        return "" if np.array_equal(labels_of(w / "multi-set"), multi) else "labels differ from the label map"

    def overlap_first_ok(r):
        if r.rc != 3:
            return f"exit {r.rc}, expected 3 (a warning): {r.err[-300:]}"
        report = json.loads((w / "overlap-report.json").read_text())
        got = report["overlaps"][0] if report["overlaps"] else {}
        if got.get("voxels") != int(liver.sum()) or got.get("kept") != "kidneys":
            return f"overlap not reported right: {got}"
        return "" if (labels_of(w / "overlap-set") == 4).sum() == overlap_kidney.sum() else "kidney voxels lost"

    def clean_255_ok(r):
        if r.rc != 0:
            return f"exit {r.rc}: {r.err[-300:]}"
        return "" if (labels_of(w / "clean-set") == 1).sum() == liver.sum() else "liver voxel count differs"

    imp = lambda folder, out, *extra: ["import-labels", folder, "--ct", f.ct, "-o", w / out, *extra]  # noqa: E731
    folders = {
        "prob": f.mask_folder("m-prob", {"liver.nii.gz": prob}),
        "noisy": f.mask_folder("m-noisy", {"liver.nii.gz": noisy}),
        "multi": f.mask_folder("m-multi", {"liver.nii.gz": multi}),
        "labels": f.mask_folder("m-labels", {"labels.nii.gz": multi}),
        "overlap": f.mask_folder("m-overlap", kidneys_and_liver),
        "leber": f.mask_folder("m-leber", {"Leber.nii.gz": liver}),
        "livr": f.mask_folder("m-livr", {"livr.nii.gz": liver}),
        "livr+k": f.mask_folder("m-livr-k", {"livr.nii.gz": liver, "kidneys.nii.gz": f.organ(4)}),
        "kidneyz": f.mask_folder("m-kidneyz", {"kidneyz.nii.gz": f.organ(4)}),
        "clean": f.mask_folder("m-clean", {"liver.nii.gz": (liver * 255).astype(np.uint8)}),
    }
    labels_map = mapping("labels-map.json", json.dumps({"labels": {str(v): k for v, k in
                                                        enumerate(["liver", "bladder", "lungs", "kidneys", "bone"], 1)}}))
    return [
        Trial("probability mask 0.95/0.02", imp(folders["prob"], "s1"), ("not binary", "0.02", "0.95"),
              [folders["prob"]], [w / "s1"]),
        Trial("0/255 mask with noise 1..19", imp(folders["noisy"], "s2"), ("not binary", "21 distinct values"),
              [folders["noisy"]], [w / "s2"]),
        Trial("label map 1..5 given as liver", imp(folders["multi"], "s3"), ("not binary", "--mapping"),
              [folders["multi"]], [w / "s3"]),
        Trial("label map with --mapping of its values", imp(folders["labels"], "multi-set", "--mapping", labels_map),
              check=multi_ok),
        Trial("kidney mask over the liver", imp(folders["overlap"], "s4"), ("overlap on", "voxels", "--overlap"),
              [folders["overlap"]], [w / "s4"]),
        Trial("kidney over liver with --overlap first", imp(folders["overlap"], "overlap-set", "--overlap", "first",
                                                            "--report", w / "overlap-report.json"),
              check=overlap_first_ok),
        Trial("mapping gives Leber twice", imp(folders["leber"], "s5", "--mapping",
                                               mapping("dup.json", '{"Leber": "liver", "Leber": "kidneys"}')),
              ("twice",), [folders["leber"]], [w / "s5"]),
        Trial("mapping gives Leber and LEBER", imp(folders["leber"], "s6", "--mapping",
                                                   mapping("case.json", '{"Leber": "liver", "LEBER": "kidneys"}')),
              ("same structure",), [folders["leber"]], [w / "s6"]),
        Trial("misspelt livr alone", imp(folders["livr"], "s7"), ("did you mean 'liver'",), [], [w / "s7"]),
        Trial("misspelt livr beside kidneys", imp(folders["livr+k"], "s8"), ("did you mean 'liver'",), [], [w / "s8"]),
        Trial("misspelt kidneyz", imp(folders["kidneyz"], "s9"), ("did you mean 'kidney'",), [], [w / "s9"]),
        Trial("mapping kidneys:middle", imp(folders["leber"], "s10", "--mapping",
                                            mapping("middle.json", '{"Leber": "kidneys:middle"}')),
              ("no part 'middle'",), [], [w / "s10"]),
        Trial("mapping value not a string", imp(folders["leber"], "s11", "--mapping",
                                                mapping("num.json", '{"Leber": 5}')),
              ("'Leber'", "got int 5"), [], [w / "s11"]),
        Trial("clean 0/255 mask accepted", imp(folders["clean"], "clean-set"), check=clean_255_ok),
        Trial("training set of the mask folder rerun (volume_0 as a structure)",
              ["import-labels", f.set, "--ct", f.ct, "-o", w / "s12"], ("training-set folder",), [f.set], [w / "s12"]),
    ]


def geometry_trials(f: Files) -> list:
    w = f.work
    even = dicom_series(f, "dcm-even", [3.0 * k for k in range(12)])
    uneven = dicom_series(f, "dcm-uneven", [0, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31])
    dup_same = dicom_series(f, "dcm-dup-same", [3.0 * k for k in range(12)], duplicate="same")
    dup_new = dicom_series(f, "dcm-dup-new", [3.0 * k for k in range(12)], duplicate="new")
    fifo_dcm = dicom_series(f, "dcm-fifo", [3.0 * k for k in range(12)], fifo=True)
    ct = read_volume(f.ct)
    big = w / "ct-50mm.nii.gz"
    write_volume(type(ct)(ct.array, np.diag([50.0, 50.0, 50.0, 1.0])), big)
    small = w / "ct-0.01mm.nii.gz"
    write_volume(type(ct)(ct.array, np.diag([0.01, 0.01, 0.01, 1.0])), small)
    fifo_ct = w / "fifo-ct.nii.gz"
    os.mkfifo(fifo_ct)
    fifo_masks = w / "m-fifo"
    fifo_masks.mkdir()
    os.mkfifo(fifo_masks / "liver.nii.gz")

    def even_ok(r):
        return "" if r.rc in (0, 3) and (w / "even.nii.gz").exists() else f"exit {r.rc}: {r.err[-300:]}"

    return [
        Trial("DICOM uneven gaps: autolabel", ["autolabel", uneven, "-o", w / "u.nii.gz", "--progress", "json"],
              ("gaps between slices are uneven",), [uneven], [w / "u.nii.gz"], json_record=True),
        Trial("DICOM uneven gaps: import --autolabel", ["import-labels", "--autolabel", "--ct", uneven, "-o",
                                                        w / "u-set"], ("uneven",), [uneven], [w / "u-set"]),
        Trial("DICOM duplicated slice (same SOP UID) -o .dcm", ["segment", dup_same, "-o", w / "d.dcm", "--progress",
                                                                "json"], ("duplicated slices",), [dup_same],
              [w / "d.dcm"], json_record=True),
        Trial("DICOM duplicated slice (new SOP UID)", ["segment", dup_new, "-o", w / "d2.nii.gz", "--progress", "json"],
              ("duplicated slices",), [dup_new], [w / "d2.nii.gz"], json_record=True),
        Trial("DICOM regular series read", ["autolabel", even, "-o", w / "even.nii.gz", "--organs", "bone",
                                            "--progress", "none"], check=even_ok),
        Trial("50 mm voxels", ["autolabel", big, "-o", w / "b.nii.gz", "--progress", "none"], ("voxel size",),
              [big], [w / "b.nii.gz"]),
        Trial("0.01 mm voxels", ["segment", small, "-o", w / "s.nii.gz", "--progress", "none"], ("voxel size",),
              [small], [w / "s.nii.gz"]),
        Trial("train --spacing 0.05", ["train", "--data", f.set, "--out", w / "sp", "--iterations", "1",
                                       *TINY_TRAIN, "--spacing", "0.05"], ("--spacing",), [f.set], [w / "sp.training"]),
        Trial("train --crop 1600 1600 1600", ["train", "--data", f.set, "--out", w / "cr", "--iterations", "1",
                                              *TINY_TRAIN, "--spacing", "3", "--crop", "1600", "1600", "1600"],
              ("--crop",), [f.set], [w / "cr.training"]),
        Trial("train --crop 400 400 400 (fits a body, not memory)", [
            "train", "--data", "phantoms:1", "--out", w / "cr2", "--iterations", "1", *TINY_TRAIN, "--spacing", "3",
            "--width", "1", "--crop", "400", "400", "400"], ("needs at least",), [], [w / "cr2.training"]),
        Trial("FIFO as the CT", ["segment", fifo_ct, "-o", w / "f.nii.gz", "--progress", "none"],
              ("not a regular file",), [], [w / "f.nii.gz"]),
        Trial("FIFO as liver.nii.gz", ["import-labels", fifo_masks, "--ct", f.ct, "-o", w / "f-set"],
              ("not a regular file",), [], [w / "f-set"]),
        Trial("FIFO in a DICOM folder", ["autolabel", fifo_dcm, "-o", w / "f2.nii.gz", "--progress", "none"],
              ("not a regular file",), [], [w / "f2.nii.gz"]),
    ]


def model_trials(f: Files) -> list:
    from broken_files import poison_checkpoint, poison_package

    w = f.work
    base = ["train", "--data", "phantoms:1", "--iterations", "3", *TINY_TRAIN]
    nan_run = w / "nan-ckpt"
    organseg(*base, "--out", nan_run, "--stop-after", "1", "--checkpoint-every", "1")
    ckpt = w / "nan-ckpt.training" / "checkpoint.safetensors"
    poison_checkpoint(ckpt)
    nan_pkg = tiny_package(f, "nan-pkg")
    poison_package(nan_pkg, float("nan"))  # NaN weights, re-signed: the card's hash made to match

    bad_manifest = w / "bad-manifest"
    shutil.copytree(f.set, bad_manifest)
    manifest = json.loads((bad_manifest / "manifest.json").read_text())
    manifest["cases"][0]["annotated_organs"] = ["liver", "livr"]
    (bad_manifest / "manifest.json").write_text(json.dumps(manifest))

    orphan_set = w / "orphan-set"
    code = ("import os, signal, sys\n"
            "import organseglib.io\n"
            "def die(*a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
            "organseglib.io.write_labels = die  # killed after the CT is in the set, before its labels\n"
            "from organseglib.cli import main\n"
            "main(sys.argv[1:])\n")

    def orphan_setup():
        subprocess.run([sys.executable, "-c", code, "import-labels", str(f.masks), "--ct", str(f.ct), "-o",
                        str(orphan_set)])

    def orphan_ok(r):
        if r.rc != 0:
            return f"exit {r.rc}: {r.err[-300:]}"
        names = sorted(p.name for p in orphan_set.iterdir() if not p.name.startswith(".organseg-training-set"))
        want = ["labels-0.nii.gz", "manifest.json", "volume-0.nii.gz"]
        return "" if names == want else f"set holds {names}, expected {want} (an orphan left?)"

    return [
        Trial("resume from a NaN checkpoint", [*base, "--out", nan_run], ("NaN or infinite", "--restart"),
              [ckpt], [nan_run]),
        Trial("train --lr inf", [*base, "--out", w / "lr", "--lr", "inf"], ("--lr", "inf"), [], [w / "lr.training"]),
        Trial("train --lr 10", [*base, "--out", w / "lr10", "--lr", "10"], ("--lr",), [], [w / "lr10.training"]),
        Trial("train --seed -1", [*base, "--out", w / "seed", "--seed", "-1"], ("--seed", "-1"), [],
              [w / "seed.training"]),
        Trial("train --threads -1", [*base, "--out", w / "th", "--threads", "-1"], ("--threads", "-1"), [],
              [w / "th.training"]),
        Trial("train --init a re-signed NaN package", [*base, "--out", w / "ft", "--init", nan_pkg],
              ("NaN or infinite",), [nan_pkg], [w / "ft", w / "ft.training"]),
        Trial("segment --model a NaN package", ["segment", f.ct, "-o", w / "n.nii.gz", "--model", nan_pkg,
                                                "--progress", "none"], ("NaN or infinite",), [nan_pkg],
              [w / "n.nii.gz"]),
        Trial("manifest naming unknown organ 'livr'", ["train", "--data", bad_manifest, "--out", w / "bm",
                                                       "--iterations", "1", *TINY_TRAIN[:-2]],
              ("case 0", "livr", "did you mean 'liver'"), [bad_manifest], [w / "bm.training"]),
        Trial("import killed between CT and labels: no orphan", ["import-labels", f.masks, "--ct", f.ct, "-o",
                                                                 orphan_set], check=orphan_ok, setup=orphan_setup),
    ]


def concurrency_trials(f: Files) -> list:
    w = f.work
    out = w / "twice"

    def twice(r_unused):
        first = subprocess.Popen([sys.executable, "-m", "organseglib", "train", "--data", "phantoms:1", "--out", str(out),
                                  "--iterations", "40", *TINY_TRAIN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        lock = w / "twice.training" / ".organseg-train.lock"
        deadline = time.monotonic() + 120
        while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        second = organseg("train", "--data", "phantoms:1", "--out", out, "--iterations", "40", *TINY_TRAIN)
        _, err = first.communicate(timeout=600)
        if first.returncode != 0:
            return f"the first run failed: {err[-300:]}"
        if second.rc != 2 or "in use by another organseg train" not in second.err:
            return f"the second run was not refused (exit {second.rc}): {second.err[-300:]}"
        return ""

    return [Trial("two train --out PKG at once: the second refused", ["--version"], check=twice)]


def message_trials(f: Files) -> list:
    w = f.work
    flipped = w / "direction.nii.gz"  # the labels written with other axis directions, same origin and spacing
    lab = f.labels
    matrix = np.array(lab.ijk_to_ras)
    matrix[:3, :3] = matrix[:3, :3] @ np.diag([-1.0, -1.0, 1.0])
    write_volume(type(lab)(lab.array, matrix), flipped)
    return [
        Trial("grid mismatch by direction only", ["evaluate", flipped, f.labels_file], ("only the direction differs",),
              [flipped]),
        Trial("evaluate --json DIR", ["evaluate", f.labels_file, f.labels_file, "--json", w],
              (f"{w / 'scores.json'}",)),
    ]


GROUPS = [output_trials, refusal_creates_nothing_trials, mask_trials, geometry_trials, model_trials,
          concurrency_trials, message_trials]

