# trainlab: `make lab` opens the workshop notebook in JupyterLab, `make app` serves it as a Voila app,
# `make test` runs every test, `make screenshot` renews the README's picture. All set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch: small, and all the lab needs (this version is also cached on the CI machines).
TORCH ?= torch==2.13.0
# PyPI's Linux torch is the CUDA build, several GB: use PyTorch's CPU index where it can be reached.
TORCH_INDEX = $(shell $(PYTHON) -c "import socket; socket.gethostbyname('download.pytorch.org')" 2>/dev/null \
	&& echo --extra-index-url https://download.pytorch.org/whl/cpu)

.PHONY: lab app test test-unit test-notebooks screenshot bench bench-peers clean

# The lab itself: torch, then trainlab (editable) with the notebook layer, JupyterLab and Voila.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "trainlab needs Python 3.10 or newer"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH)"
	$(PY) -m pip install --quiet -e .
	touch $@

# What the tests and benchmarks add: pytest, nbval, Playwright, repo2docker.
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Extra flags for JupyterLab: make lab LAB_ARGS="--no-browser --port 8899". As root (many containers)
# JupyterLab refuses to start without --allow-root, so it is added then.
LAB_ARGS ?=
ROOT_ARGS = $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

# The project's own Jupyter setup, in jupyter/ (Binder's binder/start uses it too): a notebook is saved
# with a plain note where its live widgets were, and the app is served from the Voila server alone
# (no CDN) and shuts down the kernels of abandoned tabs.
JUPYTER_SETUP = JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter JUPYTER_PATH=$(CURDIR)/jupyter
WORKSHOP = notebooks/04_live_lab.ipynb

# JupyterLab on the workshop notebook, with the notebooks folder as its file browser's root.
lab: $(VENV)/.installed
	$(JUPYTER_SETUP) $(VENV)/bin/jupyter lab $(WORKSHOP) $(ROOT_ARGS) $(LAB_ARGS)

# The workshop notebook as an app (the dashboard, no code). Voila's flags: make app APP_ARGS="--no-browser".
APP_ARGS ?=
app: $(VENV)/.installed
	$(JUPYTER_SETUP) $(VENV)/bin/voila $(WORKSHOP) $(APP_ARGS)

test: $(VENV)/.installed-test
	mkdir -p test-output && $(PY) -m benchmarks --quick --json test-output/bench-quick.json
	$(PY) -m pytest -q -p no:cacheprovider tests -m "not notebooks"
	$(MAKE) --no-print-directory test-notebooks

test-unit: $(VENV)/.installed-test
	$(PY) -m pytest -q -p no:cacheprovider tests -m "not browser and not docs and not network and not notebooks"

# nbval on every notebook, notebooks/solutions/ included: notebook 06 runs as the learner gets it (its open
# exercises give reports, not errors) and as its answer key (whose "your loop is correct" cell nbval checks),
# about 10 s each. Then the tests that run nbval themselves (a mistake put back into the answer key).
test-notebooks: $(VENV)/.installed-test
	$(PY) -m pytest -q --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks
	$(PY) -m pytest -q -p no:cacheprovider tests -m notebooks

# The README's pictures (docs/dashboard.png, docs/network.png), taken by the browser tests. Tests
# write only to test-output/; this is the one command that changes the picture in the repository.
screenshot: $(VENV)/.installed-test
	TRAINLAB_REQUIRE_BROWSER=1 $(PY) -m pytest -q -p no:cacheprovider \
		"tests/browser/test_lab.py::test_the_workshop_notebook_in_jupyterlab" \
		"tests/browser/test_network_view.py::test_the_neuron_view_redraws_while_playing_in_jupyterlab"
	cp test-output/browser/dashboard.png docs/dashboard.png
	cp test-output/browser/network.png docs/network.png

bench: $(VENV)/.installed-test
	$(PY) -m benchmarks

# trainlab next to Lightning, Ignite, Keras, skorch and poutyne (the [peers] extra), with torch held
# at the installed version so pip cannot swap it for another build.
$(VENV)/.installed-peers: $(VENV)/.installed-test
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/torch-pin.txt
	$(PY) -m pip install --quiet $(TORCH_INDEX) -c $(VENV)/torch-pin.txt -e ".[peers]"
	touch $@

bench-peers: $(VENV)/.installed-peers
	$(PY) -m benchmarks --peers

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
