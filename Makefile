# Human entry points. The two that matter for a newcomer are `make demo` and `make test`.
.PHONY: setup test test-unit demo cluster-binaries cluster-up cluster-down lint clean

setup:            ## install Debian packages, .venv and the cached control-plane binaries
	bash scripts/setup.sh

test:             ## the full test command (what .ci/run runs)
	bash scripts/test.sh

test-unit:        ## fast checks: no control plane, no Git server
	bash scripts/test.sh tests/unit

demo: setup       ## local control plane + example repo + gitsync serve with the UI; Ctrl-C stops it
	.venv/bin/gitsync demo

cluster-binaries: ## build kube-apiserver and kube-controller-manager v1.20.2 once (cached)
	bash scripts/build-k8s.sh

cluster-up: setup ## start the test control plane in the background; prints KUBECONFIG=<path>
	@.venv/bin/gitsync cluster up

cluster-down:     ## stop exactly what cluster-up started
	@.venv/bin/gitsync cluster down

# a .PHONY of its own: without it make sees the bench/ directory and does nothing
.PHONY: bench
bench:            ## the benchmark suite: gitsync vs kubectl / raw API limit (BENCHMARKS.md)
	mkdir -p .artifacts
	.venv/bin/python -m bench --json .artifacts/bench.json --profile .artifacts/bench-profile.txt

lint:
	.venv/bin/ruff check gitsync tests && .venv/bin/mypy --strict gitsync tests/support && .venv/bin/lint-imports

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
