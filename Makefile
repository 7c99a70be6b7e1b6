# The README's commands. Everything runs in one environment, .venv, created on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# make tutorial runs the class profile unless VQVAE_PROFILE is set (VQVAE_PROFILE=smoke make tutorial)
TUTORIAL_PROFILE := $(or $(VQVAE_PROFILE),class)

.PHONY: install tutorial test lint lab notebooks benchmarks clean-data

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Execute every notebook in order, headless; executed copies go to build/notebooks, figures to figures/.
tutorial: $(STAMP)
	@mkdir -p build/notebooks
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb (profile $(TUTORIAL_PROFILE))"; \
		VQVAE_PROFILE=$(TUTORIAL_PROFILE) $(PY) -m jupyter nbconvert --to notebook --execute \
			--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.store_widget_state=False --output-dir build/notebooks "$$nb" || exit 1; \
	done
	@echo "Executed notebooks are in build/notebooks/, figures in figures/."

# Unit tests, then every notebook under nbval in the smoke profile.
test: $(STAMP)
	$(PY) -m ruff check vqvae_lib tests benchmarks tools
	VQVAE_PROFILE=smoke $(PY) -m pytest tests
	VQVAE_PROFILE=smoke $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks

lint: $(STAMP)
	$(PY) -m ruff check vqvae_lib tests benchmarks tools

lab: $(STAMP)
	$(PY) -m jupyter lab notebooks

# Maintainers: re-execute the committed notebooks in place, in the class profile.
notebooks: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		VQVAE_PROFILE=class $(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.store_widget_state=False \
			--ExecutePreprocessor.timeout=1800 "$$nb" || exit 1; \
	done
	$(PY) tools/tidy_notebooks.py $(NOTEBOOKS)

clean-data:
	rm -rf data/mni152 data/cache
