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

.PHONY: reproduce publish test unit venv clean help

help:
	@echo "make reproduce [PROFILE=smoke|cpu|paper] [ONLY=00,03] [JOBS=N]   run the notebook series"
	@echo "make test                                                       unit tests + smoke notebooks + nbval"

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

clean:
	rm -rf build
