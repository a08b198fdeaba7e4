# The two commands of README.md. Both set everything up on a fresh machine (a .venv in this folder);
# on a GPU machine add ONNXRUNTIME=gpu (make demo ONNXRUNTIME=gpu, make install ONNXRUNTIME=gpu).
#   make demo   generate the embedded demo world and run the whole workflow on it
#   make test   lint (ruff, with pydocstyle), build the docs site (--strict) and run the test suite
#   make docs   build the documentation site into site/ (offline; open site/index.html)
#   make view   look at the run's maps in a browser (http://127.0.0.1:$(PORT)/), after make demo
#   make gpu-check  the GPU path in minutes (bench/gpu_check.py: torch and numpy alone, no venv needed)
#   make mutation   mutation score of l2h/core, metrics and harmonize (mutmut; a bench, not part of make test)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# PyTorch 2.13.0 as pip finds it (on a GPU machine PyPI's Linux x86_64 wheel is the CUDA 13.0 build;
# docs/gpu.md); TORCH_PIP_ARGS for another index.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
# The onnxruntime build inference runs on: cpu, or gpu (onnxruntime-gpu with CUDA 13 / cuDNN 9 wheels).
# Never both: they share one module. Switching uninstalls the other first (and both when both are there).
# Unset, it is the build the venv has (a GPU venv stays one through make test, make demo...), else cpu.
ONNXRUNTIME ?= $(if $(wildcard $(VENV)/.l2h-installed-gpu),gpu,cpu)
ifeq ($(filter $(ONNXRUNTIME),cpu gpu),)
$(error ONNXRUNTIME must be cpu or gpu, not '$(ONNXRUNTIME)')
endif
OTHER_ONNXRUNTIME := $(if $(filter gpu,$(ONNXRUNTIME)),onnxruntime,onnxruntime-gpu)
DEMO_DIR ?= resources/demo
DEMO_SEED ?= 42
CORES ?= all
BIN := $(VENV)/bin
STAMP := $(VENV)/.l2h-installed-$(ONNXRUNTIME)
WEB := l2h/view/web
PORT ?= 8000

.PHONY: demo test docs install view rulegraph clean-demo slurm-profile gpu-check mutation
# A run killed hard (SIGKILL, power loss) leaves Snakemake's lock behind: it is removed only when
# no snakemake process works in this folder (l2h/runlock.py), then the run resumes.
demo: $(STAMP) $(DEMO_DIR)/manifest.json
	if $(BIN)/python -m l2h.core.runlock .; then PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --unlock; fi
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/ruff check .
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -ra --durations=15

install: $(STAMP)

# Tables of measurements come from bench/results/*.json and the configuration reference from the schema.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The viewer's web map library (Leaflet) comes from npm, pinned by $(WEB)/package-lock.json, and is
# served from this folder: the page never loads anything from a CDN. Without npm only the viewer is lost.
$(STAMP): pyproject.toml $(WEB)/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	if $(BIN)/python -m pip show --quiet $(OTHER_ONNXRUNTIME) 2>/dev/null; then \
		$(BIN)/python -m pip uninstall --quiet -y onnxruntime onnxruntime-gpu; rm -f $(VENV)/.l2h-installed-*; fi
	$(BIN)/python -m pip install --quiet -e ".[dev,docs,report,slurm,view,$(ONNXRUNTIME)]"
	if command -v npm >/dev/null; then npm ci --prefix $(WEB) --no-audit --no-fund --silent; \
	else echo "npm not found: the workflow runs without it; make view needs Node.js with npm, then: npm ci --prefix $(WEB)" >&2; fi
	touch $@

view: $(STAMP)
	$(BIN)/l2h view --port $(PORT)

# On a GPU node with CUDA PyTorch (and numpy): no venv, no GDAL or Snakemake; writes bench/results/gpu_check.json.
# PYTHON=... names the Python that has CUDA torch.
gpu-check:
	$(PYTHON) bench/gpu_check.py

# Mutation testing ([tool.mutmut] in pyproject.toml), one mutant at a time; writes bench/results/mutation.json.
MUTATION_CHILDREN ?= 1
mutation: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/mutation.py --max-children $(MUTATION_CHILDREN)

$(DEMO_DIR)/manifest.json: | $(STAMP)
	$(BIN)/l2h demo-world $(DEMO_DIR) --seed $(DEMO_SEED)

# The DAG picture in README.md and docs/workflow.md (needs graphviz's `dot`, e.g. apt-get install graphviz).
rulegraph: $(STAMP) $(DEMO_DIR)/manifest.json
	set -o pipefail; PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores 1 --rulegraph | dot -Tsvg > docs/.rulegraph.svg.tmp && mv docs/.rulegraph.svg.tmp docs/rulegraph.svg

clean-demo:
	rm -rf $(DEMO_DIR) resources/regions

# `snakemake --profile slurm` by name: link profiles/slurm as <config dir>/snakemake/slurm, where
# Snakemake looks for profiles by name. A `slurm` profile that is not this link is left alone.
SNAKEMAKE_PROFILES ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
slurm-profile:
	@link="$(SNAKEMAKE_PROFILES)/slurm"; target="$(CURDIR)/profiles/slurm"; \
	if [ "$$(readlink "$$link")" = "$$target" ]; then echo "$$link already links to $$target"; \
	elif [ -e "$$link" ] || [ -L "$$link" ]; then \
		echo "$$link exists and is not l2h's: left alone; use --profile $$target" >&2; exit 1; \
	else mkdir -p "$(SNAKEMAKE_PROFILES)" && ln -s "$$target" "$$link" && \
		echo "linked $$link -> $$target: snakemake --profile slurm"; fi
