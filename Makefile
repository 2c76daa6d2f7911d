# Two commands do all the set-up on a fresh machine:
#   make demo   install into .venv and run the bundled digits recipe (40% wrong labels)
#   make test   install into .venv and run the tests under TensorFlow, JAX and PyTorch
# and one builds the documentation:
#   make docs   install into .venv and build docs/ into site/ (open site/index.html)
PYTHON ?= python3
VENV := .venv
BACKENDS := tensorflow jax torch
# pytest-xdist workers per backend; most test time is single-threaded tracing, so two share two cores well.
TEST_WORKERS ?= 2
export TF_CPP_MIN_LOG_LEVEL := 2

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# Pinned first: the CPU build; an unpinned torch pulls a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[jax,torch,test,docs]'
	touch $@

.PHONY: install demo test docs
install: $(VENV)/installed

demo: $(VENV)/installed
	$(VENV)/bin/keras-mixnn run recipes/digits_sym40.py

test: $(VENV)/installed
	@status=0; for backend in $(BACKENDS); do \
		echo "== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(VENV)/bin/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) tests || status=1; \
	done; exit $$status

# Warnings (a broken link, a docstring griffe cannot parse) fail the build.
docs: $(VENV)/installed
	$(VENV)/bin/mkdocs build --strict
