# The two commands of the README: `make reproduce` and `make test`.
# Both create the virtual environment on first use (offline-safe once the packages are cached).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
JOBS ?= 1
ONLY ?=
SMOKE := build/smoke

export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: reproduce publish test unit unit-other-kernels venv clean help book student

help:
	@echo "make reproduce [PROFILE=smoke|cpu|paper] [ONLY=00,03] [JOBS=N]   run the notebook series"
	@echo "make test                                                       unit tests + smoke notebooks + nbval"
	@echo "make unit-other-kernels                                         unit tests under scalar CPU kernels, 2 threads"
	@echo "make book                                                       static HTML site of the committed notebooks -> build/book"
	@echo "make student                                                    notebooks without their solution cells -> build/student"

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

venv: $(VENV)/.installed

reproduce: venv
	$(PY) -m mil_core.reproduce --profile $(PROFILE) --jobs $(JOBS) $(if $(ONLY),--only $(ONLY))

# Maintainers: refresh the committed outputs from a scripted run (default: the cpu profile).
publish: venv
	$(PY) -m mil_core.reproduce --profile $(if $(filter smoke,$(PROFILE)),cpu,$(PROFILE)) \
		--jobs $(JOBS) $(if $(ONLY),--only $(ONLY)) --publish

# One execution per notebook: papermill runs the smoke profile once; nbval then compares the cells
# tagged nbval-check-output with the committed outputs through replay notebooks (mil_core/nbcheck.py).
test: venv
	rm -rf $(SMOKE) build/nbval
	$(PY) -m mil_core.reproduce --profile smoke --output-dir $(SMOKE)/notebooks \
		--figures-dir $(SMOKE)/figures; echo $$? > build/smoke-status
	$(PY) -m mil_core.nbcheck --executed $(SMOKE)/notebooks --committed notebooks --out build/nbval
	$(PY) -m pytest tests build/nbval --nbval-lax --nbval-current-env -p no:cacheprovider
	@status=$$(cat build/smoke-status); if [ "$$status" != 0 ]; then \
		echo "smoke run of the notebooks failed (see $(SMOKE)/notebooks/*.log)"; exit 1; fi

unit: venv
	$(PY) -m pytest tests -q

# The unit tests once more under torch's scalar CPU kernels and two threads: a test whose verdict
# depends on the CPU model (AVX2 vs AVX-512 vs none) or on the thread count fails here on any machine.
unit-other-kernels: venv
	ATEN_CPU_CAPABILITY=default MIL_TEST_THREADS=2 $(PY) -m pytest tests -q -p no:cacheprovider

# Teaching kit: the committed notebooks as an offline HTML site (not re-executed), and copies of
# them without the cells tagged `solution`. Both write only under build/ (git-ignored).
book: venv
	$(PY) -m mil_core.book --notebooks notebooks --out build/book

student: venv
	$(PY) -m mil_core.student --notebooks notebooks --out build/student

clean:
	rm -rf build
