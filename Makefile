# OrganSeg: `make demo` and `make test` set up .venv on first use (CPU PyTorch pinned).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.organseg-installed
# The CPU build of PyTorch; an unpinned torch would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
INPUT  ?=
OUT    ?= demo_output

.PHONY: demo test test-fast bench clean-venv

$(STAMP): OrganSegLib/pyproject.toml CUDAAugment/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e "OrganSegLib[test,slicer,torch]" -e "CUDAAugment[test,torch]" "$(TORCH)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/organseg demo --out "$(OUT)" $(if $(INPUT),--input "$(INPUT)")

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) -m pip install --quiet -e "OrganSegLib[bench]" "$(TORCH)"  # MONAI, the sliding-window peer
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
