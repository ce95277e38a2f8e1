# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test test-fast test-slow test-fuzz bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --constraint constraints.txt -e ".[testing,test,eval,dist,torch,notebooks,browser]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/smug inspect tests/data/mnist/mnist-net_256x2.onnx
	$(VENV)/bin/smug explain tests/data/mnist/mnist-net_256x2.onnx examples/data/mnist_test_2.png --out demo-out --force

test: $(STAMP)
	$(PY) -m pytest -n 2 -m "not fuzz"

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow and not fuzz"

test-slow: $(STAMP)
	$(PY) -m pytest -n 2 -m slow

test-fuzz: $(STAMP)
	$(PY) -m pytest -n 2 -m fuzz tests/test_fuzz_inputs.py

bench: $(STAMP)
	$(PY) benchmarks/bench_explain.py
	$(PY) benchmarks/bench_attribution.py
	$(PY) benchmarks/bench_batch.py
	$(PY) benchmarks/bench_evaluation.py
	$(PY) benchmarks/bench_hard.py --models mnist-net_256x4 --top-k 32 --checkpoints 1,10

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
