# `make run` and `make test` are the only two set-up commands a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` needs only the runtime dependencies (RUN_STAMP); tests, lint and the benchmarks
# add the test extras on top (STAMP). Either may come first on a fresh clone.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-pg chromium fonts wrk clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The install also compiles the translation catalogs (core/translations/*/LC_MESSAGES/paylinks.po -> .mo);
# core/i18n.py compiles in memory any catalog whose .mo is missing or older than its .po.
CATALOGS := $(wildcard core/translations/*/LC_MESSAGES/paylinks.po)
COMPILED := $(CATALOGS:.po=.mo)

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

# A catalog is compiled again whenever its .po changes (pybabel comes with the runtime dependencies).
%/LC_MESSAGES/paylinks.mo: %/LC_MESSAGES/paylinks.po | $(RUN_STAMP)
	$(BIN)/pybabel -q compile -i $< -o $@

run: $(RUN_STAMP) fonts
	$(BIN)/paylinks serve

# The browser test needs Debian's chromium; install it when we can (root), otherwise that test skips
# with its reason (and fails under CI=true).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will skip"; }

# Invoice and receipt PDFs embed Noto (OFL) for Latin/Vietnamese, Thai and CJK (adapters/web/pdf.py); without
# them PDFs fall back to DejaVu (no Thai/CJK) and the PDF test skips (fails under CI=true).
fonts:
	@[ -f /usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf ] && [ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] \
	  || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  fonts-noto-core fonts-noto-cjk >/dev/null) || echo "Noto fonts not installed: invoice PDFs cannot print Thai or CJK"; }

wrk:
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null); }

lint: $(STAMP)
	$(BIN)/ruff check core adapters bots tests bench migrations
	$(BIN)/mypy

test: $(STAMP) chromium fonts lint
	$(BIN)/python -m pytest -q

# Web (with start-up and the outbox), memory, then the SQLite lock benchmark; every figure with its target.
bench: $(STAMP) wrk
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.lock

# 2 `paylinks serve` + 1 `paylinks worker` on a fresh database of the local PostgreSQL (dropped after),
# beside one SQLite process (PAYLINKS_BENCH_PG_URL=postgresql+asyncpg://user@host:port names the server).
bench-pg: $(STAMP) wrk
	$(BIN)/python -m bench.pg

clean:
	rm -rf $(VENV) paylinks.db paylinks.db-wal paylinks.db-shm
