# audiodiff: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch must stay at 2 threads or fewer on the 2-core machines we test on
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
# idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning made small
# denoiser calls ~50x slower (benchmarks/README.md)
export OMP_WAIT_POLICY ?= PASSIVE
# the bundled sentence encoder is loaded from disk; never reach for a model hub in tests
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-fast bench samples ui clean

SYSDEPS := $(VENV)/.sysdeps

# Debian packages the music recipe and its tests need (FluidSynth and a GM soundfont), and the browser
# the web page's end-to-end test drives (Chromium and its WebDriver), and espeak-ng for the speech
# judge recipe's extra voices
$(SYSDEPS):
	@mkdir -p $(VENV)
	@if ldconfig -p | grep -q libfluidsynth && [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing libfluidsynth3 and timgm6mb-soundfont (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    libfluidsynth3 timgm6mb-soundfont >/dev/null; \
	else echo "note: the music recipe needs libfluidsynth3 and timgm6mb-soundfont (apt-get install ...)"; fi
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and chromium-driver (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null; \
	else echo "note: the web page's browser test needs chromium and chromium-driver (apt-get install ...)"; fi
	@if command -v espeak-ng >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing espeak-ng (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null; \
	else echo "note: the speech judge's extra voices need espeak-ng (apt-get install espeak-ng)"; fi
	@touch $@

$(STAMP): pyproject.toml constraints.txt $(SYSDEPS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,plot,text,ui]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/audiodiff demo --out out

test: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"  # everything: pyproject.toml deselects slow tests by default

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,plot,text,bench]'
	$(PY) benchmarks/run.py

ui: $(STAMP)
	$(VENV)/bin/audiodiff ui

samples: $(STAMP)
	$(PY) recipes/samples.py --out samples

clean:
	rm -rf $(VENV) out .pytest_cache
