# Two commands do all set-up: `make demo` and `make test` (see README.md).
VENV := .venv
PY := $(VENV)/bin/python
DEMO_REPO ?= demo_repo
DEMO_OUTPUT ?= demo_output
PYTEST_ARGS ?=
DOCS_OUTPUT ?= doc/_build/html
BENCH_ARGS ?=

.PHONY: bootstrap demo demo-repo test lint bench lock clean docs

bootstrap:
	@bash scripts/bootstrap.sh

demo-repo: bootstrap
	@if [ -f "$(DEMO_REPO)/butler.yaml" ]; then \
		echo "Demo repository already present: $(abspath $(DEMO_REPO))"; \
	else \
		$(VENV)/bin/makeCutoutDemoRepo $(DEMO_REPO) --visits 6 --bands g,r,i; \
	fi

demo: demo-repo
	@bash scripts/run_demo.sh "$(DEMO_REPO)" "$(DEMO_OUTPUT)"

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

# The Sphinx documentation; any warning fails the build.
docs: bootstrap
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html doc $(DOCS_OUTPUT)
	@echo "Documentation: $(abspath $(DOCS_OUTPUT))/index.html"

lint: bootstrap
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks

bench: bootstrap
	$(PY) -m benchmarks.benchmark --output bench_output $(BENCH_ARGS)

lock: bootstrap
	@{ echo "# Exact versions of every dependency (direct and transitive), used as pip constraints."; \
	   echo "# Regenerate with: make lock"; \
	   $(VENV)/bin/pip freeze --exclude-editable | grep -v '^lsst-analysis-ap'; } > requirements/constraints.txt

clean:
	rm -rf $(DEMO_REPO) $(DEMO_OUTPUT) bench_output doc/_build
