"""The trials of ``scripts/hostile_sweep.py`` (issue 19), by responsibility: ``runner`` runs one trial in a
child process and judges it (refused cleanly, or correct); ``inputs`` makes the files the trials are given
(masks, a training set, DICOM series, tiny model packages); ``trials`` lists them in groups."""
