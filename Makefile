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

demo: $(STAMP)
	$(BIN)/tfnas-search --space=nasbench201 --oracle=random --dataset=digits \
		--max_trials=4 --epochs=4 --output_dir=runs/demo --seed=0

lint: $(STAMP)
	$(BIN)/ruff check tfnas tools benchmarks examples
	$(BIN)/ruff format --check tfnas tools benchmarks examples

test: $(STAMP)
	$(BIN)/ruff check tfnas tools benchmarks examples
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tfnas benchmarks examples

clean:
	rm -rf $(VENV) runs
