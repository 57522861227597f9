# skytriage: `make demo` sets everything up and runs preview on simulated data;
# `make test` runs the whole test suite; `make bench` the benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo-output
BENCH := bench-output

.PHONY: venv demo test bench lint clean real-data

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skytriage simulate frames --out $(DEMO)/night --datasets 3 --frames 40 --size 1024x1024 --seed 1
	$(BIN)/skytriage preview $(DEMO)/night --out $(DEMO)/preview || [ $$? -eq 1 ]
	@echo "report: $$(cd $(DEMO)/preview && pwd)/report.html"

real-data: $(STAMP)
	$(BIN)/python tests/data/fetch_real.py .cache/real-data

test: $(STAMP) real-data
	$(BIN)/python -m pytest

bench: $(STAMP) real-data
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,peers]"
	$(BIN)/python benchmarks/bench_io.py --out $(BENCH)
	$(BIN)/python benchmarks/bench_sky.py --out $(BENCH)
	$(BIN)/python benchmarks/bench_preview.py --out $(BENCH)
	$(BIN)/python benchmarks/bench_crmask.py --out $(BENCH) --real .cache/real-data
	$(BIN)/python benchmarks/bench_ramp.py --out $(BENCH)
	$(BIN)/python benchmarks/bench_transients.py --out $(BENCH)
	$(BIN)/python benchmarks/bench_events.py --out $(BENCH)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(DEMO) $(BENCH) .pytest_cache .ruff_cache
