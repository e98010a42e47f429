# The two README commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HARNESS := $(VENV)/bin/harness
DEMO := build/demo

.PHONY: demo test lint format venv clean

$(VENV)/.stamp: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[convert,test,postgres,ray]'
	touch $@

venv: $(VENV)/.stamp

# Train the digits CNN, convert it to four variants, time them on this host, print the table,
# write build/demo/report.html.
demo: venv
	$(PY) models/digits.py --out $(DEMO)/model
	$(HARNESS) convert $(DEMO)/model/digits.keras -o $(DEMO)/variants \
		--variants fp32,fp16,dynamic,int8 --calibration $(DEMO)/model/calibration.npz
	$(HARNESS) run $(DEMO)/variants --device local --delegates cpu,xnnpack,gpu,nnapi \
		--threads 1,2 --runs 200 --eval $(DEMO)/model/eval.npz --store sqlite:///$(CURDIR)/$(DEMO)/results.db
	$(HARNESS) report latest --store sqlite:///$(CURDIR)/$(DEMO)/results.db --html $(DEMO)/report.html

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf build $(VENV)
