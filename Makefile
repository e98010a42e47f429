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
	$(PY) -m pip install --quiet -e '.[convert,onnx,test,postgres,ray]'
	# onnx2tf builds with tf-keras, whose declared dependency would add `tensorflow`
	# over tensorflow-cpu (see setup.cfg [onnx]): installed without its dependencies
	$(PY) -m pip install --quiet --no-deps tf-keras==2.21.0
	touch $@

venv: $(VENV)/.stamp

# Train a small binary scorer on scikit-learn's bundled breast-cancer data, convert it to
# four variants (int8 with int8 input/output), time them on this host with ROC AUC as the
# primary metric (F1 and SNR beside it), print the table, write build/demo/report.html.
# The variants differ in both latency and AUC: that trade-off is what the tool is for.
demo: venv
	$(PY) models/breast_cancer.py --out $(DEMO)/model
	$(HARNESS) convert $(DEMO)/model/breast_cancer.keras -o $(DEMO)/variants \
		--variants fp32,fp16,dynamic,int8 --calibration $(DEMO)/model/calibration.npz --int8-io
	$(HARNESS) run $(DEMO)/variants --device local --delegates cpu,xnnpack,gpu,nnapi \
		--threads 1,2 --runs 200 --eval $(DEMO)/model/eval.npz \
		--metric auc --metric f1 --metric snr --store sqlite:///$(CURDIR)/$(DEMO)/results.db
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
