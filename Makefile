# `make test` and `make demo` each install first, so either works alone on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# GPU users: make install TF_PKG='tensorflow[and-cuda]==2.15.1'
TF_PKG ?= tensorflow-cpu==2.15.1
STAMP := $(VENV)/.install.stamp
PYTEST := $(PY) -m pytest -q
DEMO_DIR ?= demo_output

.PHONY: install lint format test test-torch test-tf test-portable demo demo-models bench clean

install: $(STAMP)

$(STAMP): constraints.txt pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt '$(TF_PKG)' -e '.[tf,test]'
	# VFA's FaceMesh: mediapipe without its declared jax, jaxlib, sounddevice and
	# opencv-contrib-python (one OpenCV, opencv-python, stays; protobuf stays 4.x).
	$(PY) -m pip install --quiet --no-deps -c constraints.txt mediapipe attrs flatbuffers
	touch $@

# ruff, configured in pyproject.toml: `make format` rewrites, `make lint` only checks (CI).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# tensorflow and the `tfrecord` package cannot share a process, so the TensorFlow-side
# tests run in a pytest process of their own; `make test` fails if either side fails.
test: install
	@status=0; \
	FR_TEST_SIDE=torch $(PYTEST) tests || status=1; \
	FR_TEST_SIDE=tf $(PYTEST) tests || status=1; \
	exit $$status

# The whole suite again on other kernels: torch without its AVX2/AVX-512 paths, TensorFlow
# without oneDNN, one thread. float32 results then move in their last bits as they do on
# another CPU, so this is the nearest thing to a second machine that one machine has.
PORTABLE_ENV := ATEN_CPU_CAPABILITY=default TF_ENABLE_ONEDNN_OPTS=0 OMP_NUM_THREADS=1
test-portable: install
	@status=0; \
	$(PORTABLE_ENV) FR_TEST_SIDE=torch $(PYTEST) tests || status=1; \
	$(PORTABLE_ENV) FR_TEST_SIDE=tf $(PYTEST) tests || status=1; \
	exit $$status

test-torch: install
	FR_TEST_SIDE=torch $(PYTEST) tests

test-tf: install
	FR_TEST_SIDE=tf $(PYTEST) tests

# Each method renders the sample with its official checkpoint when one is under checkpoints/<pkg>/,
# else with the small demo model committed in <pkg>/demo_model/, then
# tools.compare_demo scores them all side by side in $(DEMO_DIR)/compare/.
demo: install
	$(PY) -m tools.make_sample_data --out $(DEMO_DIR)/sample
	$(PY) -m tools.demo_preview --sample $(DEMO_DIR)/sample --out $(DEMO_DIR)/preview
	$(PY) -m fsth.sample_demo --sample $(DEMO_DIR)/sample --out $(DEMO_DIR)/fsth
	$(PY) -m fsrt.sample_demo --sample $(DEMO_DIR)/sample --out $(DEMO_DIR)/fsrt
	$(PY) -m lsr.sample_demo --sample $(DEMO_DIR)/sample --out $(DEMO_DIR)/lsr
	$(PY) -m vpgc.sample_demo --sample $(DEMO_DIR)/sample --out $(DEMO_DIR)/vpgc
	$(PY) -m vfa.sample_demo --sample $(DEMO_DIR)/sample --out $(DEMO_DIR)/vfa
	$(PY) -m tools.compare_demo --demo $(DEMO_DIR) --out $(DEMO_DIR)/compare

# Retrain the committed demo models from their recipes (<pkg>/runs/sample*) with each method's
# own training command on the sample's training frames; rewrites <pkg>/demo_model/.
demo-models: install
	$(PY) -m tools.make_sample_data --out $(DEMO_DIR)/sample
	$(PY) -m fsth.demo_model --sample $(DEMO_DIR)/sample
	$(PY) -m fsrt.demo_model --sample $(DEMO_DIR)/sample
	$(PY) -m lsr.demo_model --sample $(DEMO_DIR)/sample
	$(PY) -m vpgc.demo_model --sample $(DEMO_DIR)/sample
	$(PY) -m vfa.demo_model --sample $(DEMO_DIR)/sample

# Every method's bench and tools.bench_common, each in its own process, in one table:
# $(BENCH_DIR)/bench.md and bench.json, then the scaling tables and plot (tools.bench_scaling).
# make bench BENCH_FLAGS=--quick takes a few minutes; BENCH_FLAGS='--only fsrt,lsr' picks methods.
BENCH_DIR ?= bench_output
bench: install
	$(PY) -m tools.bench --out $(BENCH_DIR) --scaling $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(BENCH_DIR) .pytest_cache
