# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# PNAS (the strongest multi-trial strategy of benchmarks/compare_multi_trial.py) under a
# budget of 500k multiply-adds (at most 3 of the cell's 6 edges 3x3 convolutions): the
# architectures above it are rejected untrained. Ends in the .tflite, the latency report and
# runs/demo/report.html; TensorBoard logs in runs/demo/tensorboard.
demo: $(STAMP)
	$(BIN)/tfnas-search --space=nasbench201 --oracle=pnas --max_flops=500000 --dataset=digits \
		--max_trials=8 --epochs=2 --output_dir=runs/demo --seed=0 --overwrite

lint: $(STAMP)
	$(BIN)/ruff check tfnas tools benchmarks examples
	$(BIN)/ruff format --check tfnas tools benchmarks examples

test: $(STAMP)
	$(BIN)/ruff check tfnas tools benchmarks examples
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tfnas benchmarks examples

clean:
	rm -rf $(VENV) runs
