"""Replay issue 19's hostile and careless trials against the ``organseg`` command and count them.

    python scripts/hostile_sweep.py [--work /tmp/organseg-hostile] [--only SUBSTRING] [--keep]

Every trial runs ``organseg`` in a child process (as a user would) on the real abdomen CT
(``../shared/data/ct/abdomen_totalseg.nii.gz``) and per-organ masks cut from its labels into the work
folder, or on files made from them (DICOM series, NaN checkpoints, FIFOs...). A trial passes when the
command either

* **refused cleanly**: exit status 2, one stderr line without a traceback saying what the trial expects,
  (with ``--progress json``) a JSON error record, every input byte for byte unchanged, and nothing
  created that the trial names; or
* did the **correct** thing the trial checks (the right labels, the overlap reported, the orphan gone).

Prints one line per trial and the count; exit status 1 when a trial failed. Nothing is written outside
the work folder. Takes a few minutes (each trial starts Python; the training trials train a tiny network).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "OrganSegLib"), str(REPO / "Testing")]

from hostile.inputs import DATA, Files  # noqa: E402
from hostile.trials import GROUPS  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/organseg-hostile", help="work folder (emptied first)")
    parser.add_argument("--only", default=None, help="run only the trials whose name holds this text")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if not (DATA / "abdomen_totalseg.nii.gz").exists():
        print(f"needs {DATA}/abdomen_totalseg.nii.gz and its labels", file=sys.stderr)
        return 2
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.environ["ORGANSEG_HOME"] = str(work / "home")  # no user registry read or written
    os.environ["ORGANSEG_CACHE"] = str(work / "cache")
    files = Files(work)
    passed, failed = 0, []
    for group in GROUPS:
        for trial in group(files):
            if args.only and args.only not in trial.name:
                continue
            problem = trial.run()
            print(f"{'ok  ' if not problem else 'FAIL'} {trial.name}" + (f": {problem}" if problem else ""), flush=True)
            if problem:
                failed.append(trial.name)
            else:
                passed += 1
    print(f"\n{passed} of {passed + len(failed)} trials refused cleanly or correct; {len(failed)} failed")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
