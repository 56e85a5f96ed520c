# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when absent.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench setup clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[ray,test]'
	# the HOTA oracle (pyproject: hota-oracle), without its opencv-python that would replace the headless cv2
	$(BIN)/python -m pip install -q --no-deps trackeval==1.3.0 tabulate==0.10.0
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

clean-venv:
	rm -rf $(VENV)
