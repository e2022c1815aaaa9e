# Two entry points, each creating or reusing the virtual environment in .venv:
#   make demo   encode + decode the bundled speech sample, print metrics, write the WAV
#   make test   lint (style, import layers) + the whole test suite on TensorFlow, JAX and PyTorch
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Re-install whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)

.PHONY: demo test lint install clean-venv

install: $(STAMP)

# Debian TTS voices (corpus builder, test speech), sox, and Chromium + its WebDriver (the
# listening report's browser test); installed only when missing.
DEB_PACKAGES := flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng sox \
  chromium chromium-driver

$(STAMP): pyproject.toml Makefile
	@if ! command -v flite >/dev/null || ! command -v text2wave >/dev/null \
	    || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null \
	    || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
	    || [ ! -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ]; then \
	  echo "installing Debian packages: $(DEB_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $$SUDO apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==26.3
	# One resolver run for the whole pinned set (torch==2.13.0 is pinned in pyproject.toml,
	# so pip takes the CPU build).
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# pip check, ignoring speechtokenizer's deliberately absent dependencies (see below).
	@problems=$$($(BIN)/python -m pip check | grep -v -e '^speechtokenizer ' \
	  -e '^No broken requirements' || true); \
	if [ -n "$$problems" ]; then echo "$$problems"; exit 1; else echo "pip check: clean"; fi
	# Reference implementation for parity tests, without its torchaudio dependency
	# (a CUDA build that breaks the CPU torch; see README). Its declared dependencies
	# (torchaudio, accelerate, ...) are deliberately absent, so this comes after pip check.
	$(BIN)/python -m pip install -q --no-deps speechtokenizer==1.0.1
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/dmcodec demo --force

test: lint
	VENV=$(VENV) bash tools/run_tests.sh

# Style, the import-layer contract (pyproject.toml [tool.importlinter]: layers, no cycles,
# the library never imports training/) and no unexplained function-level imports.
lint: $(STAMP)
	$(BIN)/ruff check keras_dmcodec training tests benchmarks tools
	$(BIN)/lint-imports
	$(BIN)/python tools/check_deferred_imports.py keras_dmcodec training

clean-venv:
	rm -rf $(VENV)
