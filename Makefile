# The README's commands. Everything runs in one environment, .venv, created on first use, with the library and
# its extras for the course (Jupyter Lab, widgets), the OASIS-1 converter, the tests and the website (pyproject.toml).
# CONSTRAINTS=constraints.txt installs the exact versions CI ran with (make tutorial CONSTRAINTS=constraints.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= course,oasis,dev,site
CONSTRAINTS ?=
# a pinned install has its own stamp: asking for the constraints installs them even where .venv is up to date
STAMP := $(VENV)/.installed$(if $(CONSTRAINTS),-pinned)-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# make tutorial runs the class profile unless VQVAE_PROFILE is set (VQVAE_PROFILE=smoke make tutorial)
TUTORIAL_PROFILE := $(or $(VQVAE_PROFILE),class)

.PHONY: install tutorial test lint lab notebooks benchmarks clean-data constraints site slides site-check student

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]" $(if $(CONSTRAINTS),-c "$(CONSTRAINTS)")
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

# Unit tests, then every notebook under nbval in the smoke profile: the committed (teacher) edition, then the
# student edition with its stubs.
test: $(STAMP)
	$(PY) -m ruff check vqvae_lib tests benchmarks tools
	VQVAE_PROFILE=smoke $(PY) -m pytest tests
	VQVAE_PROFILE=smoke $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks
	$(PY) tools/student_edition.py $(NOTEBOOKS) --out build/student
	VQVAE_PROFILE=smoke $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 build/student

# The student edition in build/student/: the notebooks with every solution replaced by a stub that raises
# NotImplementedError("your turn") (tools/student_edition.py); the committed notebooks are the teacher edition.
student: $(STAMP)
	$(PY) tools/student_edition.py $(NOTEBOOKS) --out build/student

lint: $(STAMP)
	$(PY) -m ruff check vqvae_lib tests benchmarks tools

# make lab LAB_DIR=build/student opens the student edition (make student)
LAB_DIR ?= notebooks
lab: $(STAMP)
	$(PY) -m jupyter lab $(LAB_DIR)

# The course website in build/site/ (Sphinx + myst-nb over the committed notebooks, nothing executed), with the
# slide decks; open build/site/index.html. site-check opens every page and deck in headless Chromium (Playwright,
# from any environment: PLAYWRIGHT_PYTHON=/path/to/python; skipped without a browser) and screenshots them.
slides: $(STAMP)
	$(PY) tools/build_slides.py

site: slides
	$(PY) tools/build_site.py

PLAYWRIGHT_PYTHON ?= $(PY)
site-check: site
	$(PLAYWRIGHT_PYTHON) tools/site_in_browser.py

# Maintainers: re-execute the committed notebooks in place, in the class profile.
notebooks: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		VQVAE_PROFILE=class $(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.store_widget_state=False \
			--ExecutePreprocessor.timeout=1800 "$$nb" || exit 1; \
	done
	$(PY) tools/tidy_notebooks.py $(NOTEBOOKS)

# Maintainers, after a green make test: record the versions it ran with in constraints.txt (no local paths; local
# version tags such as torch's +cu130 dropped, so that torch==X matches the PyPI wheel and the CPU index's X+cpu).
constraints: $(STAMP)
	@$(PY) -m pip freeze --exclude-editable > $(VENV)/constraints.tmp
	@if grep -E ' @ |file:' $(VENV)/constraints.tmp; then \
		echo "constraints: the packages above come from a path or URL, not an index" >&2; rm -f $(VENV)/constraints.tmp; exit 1; fi
	@{ echo "# The exact versions of the environment make test (CI) ran with: vqvae_lib[$(EXTRAS)] on Python $$($(PY) -c 'import platform; print(platform.python_version())'),"; \
	   echo "# $$(uname -sm), $$(date +%Y-%m-%d), commit $$(git rev-parse --short HEAD)."; \
	   echo "# Made by make constraints: pip freeze --exclude-editable of .venv, local version tags (+cu130) dropped."; \
	   echo "# Use: make tutorial CONSTRAINTS=constraints.txt (or pip install -e '.[$(EXTRAS)]' -c constraints.txt)."; \
	   echo "# A constraint applies only where something requires the package: the nvidia-*, cuda-* and triton"; \
	   echo "# lines pin torch's Linux CUDA wheels and are ignored elsewhere (macOS, torch from the CPU index)."; \
	   sed -E 's/\+[0-9A-Za-z.]+$$//' $(VENV)/constraints.tmp; } > constraints.txt
	@rm -f $(VENV)/constraints.tmp
	@echo "wrote constraints.txt ($$(grep -vc '^#' constraints.txt) packages)"

clean-data:
	rm -rf data/mni152 data/cache
