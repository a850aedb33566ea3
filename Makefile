# bluegreen.dbfix — the two commands are `make demo` and `make test`.
# Every target installs what it needs first (apt, pip into .venv, npm from the
# committed lock files), so both work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup system venv node-tools demo demo-clean test lint sanity pytest molecule bench-backup bench-fix bench-scale bench-switch docs clean

help:
	@echo "make demo        build a local blue/green estate with the incident, fix it, print the report"
	@echo "make demo-clean  stop the demo's pm2 and remove demo/"
	@echo "make test        every check: lint, sanity, pytest, molecule"
	@echo "make lint | sanity | pytest | molecule   one stage"
	@echo "make bench-backup | bench-fix | bench-scale | bench-switch   benchmarks (figures in docs/benchmarks.md)"

system:
	@bash scripts/setup-system.sh

venv:
	@bash scripts/setup-venv.sh

node-tools: system
	@bash scripts/setup-node.sh

setup: system venv node-tools

demo: setup
	@bash scripts/demo.sh

demo-clean:
	@bash scripts/demo-clean.sh

test: setup
	@bash scripts/test-all.sh

lint: setup
	@bash scripts/test-lint.sh

sanity: venv
	@bash scripts/sanity.sh

pytest: setup
	@bash scripts/test-pytest.sh

molecule: setup
	@bash scripts/test-molecule.sh

bench-backup: setup
	@.venv/bin/python bench/backup.py --runs 5 --live-runs 2 --live-timeout 30

bench-fix: setup
	@.venv/bin/python bench/whole_fix.py

bench-scale: setup
	@.venv/bin/python bench/scale.py

bench-switch: setup
	@PATH="$(CURDIR)/.venv/bin:$(CURDIR)/tests/tools/node_modules/.bin:$$PATH" .venv/bin/python bench/switch.py

clean:
	rm -rf build .pytest_cache .ruff_cache tests/output
