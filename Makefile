# `make serve` and `make test` work on a fresh machine with python3 >= 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint format bench bench-memory bench-profile bench-fanout bench-pgbouncer bench-statements scale-test soak attack bench-sign-in wrk schema examples clean

# Exits 0 on a Python gql_blog runs on.
SUPPORTED := import sys; sys.exit(sys.version_info < (3, 11))

# (Re)install when the venv is missing or pyproject.toml changed since the last install. A venv
# left by a first try with a too-old $(PYTHON) is rebuilt, not reused.
$(STAMP): pyproject.toml
	@if test -x $(BIN)/python && ! $(BIN)/python -c '$(SUPPORTED)'; then \
		echo "$(VENV) has a Python older than 3.11: rebuilding it" >&2; rm -rf $(VENV); fi
	@if ! test -x $(BIN)/python; then \
		$(PYTHON) -c '$(SUPPORTED)' || { echo "$(PYTHON) is older than Python 3.11:" \
			"run make PYTHON=python3.12 (or another 3.11+ interpreter)" >&2; exit 1; }; \
		$(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

serve: $(STAMP)
	$(BIN)/gql-blog db upgrade
	$(BIN)/gql-blog serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check gql_blog tests bench examples
	$(BIN)/ruff format --check gql_blog tests bench examples
	$(BIN)/mypy --strict gql_blog

format: $(STAMP)
	$(BIN)/ruff format gql_blog tests bench examples
	$(BIN)/ruff check --fix gql_blog tests bench examples

schema: $(STAMP)
	$(BIN)/gql-blog export-schema --output schema.graphql

# The schema's consumers (examples/): the `examples` extra in .venv, graphql-codegen and tsc from npm.
EXAMPLES_STAMP := $(VENV)/.examples-installed
EXAMPLES_NPM_STAMP := examples/node_modules/.installed

$(EXAMPLES_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,examples]'
	@touch $(EXAMPLES_STAMP)

$(EXAMPLES_NPM_STAMP): examples/package.json examples/package-lock.json
	cd examples && npm ci --no-audit --no-fund --loglevel=error
	@touch $(EXAMPLES_NPM_STAMP)

# Serves a fresh SQLite database, runs the Python client against it, type-checks the TypeScript.
examples: $(EXAMPLES_STAMP) $(EXAMPLES_NPM_STAMP)
	BIN=$(BIN) examples/run

# The benchmark's rivals, apart from `make test`'s install: strawberry-sqlalchemy-mapper in .venv,
# graphene-sqlalchemy in a venv of its own, PostGraphile 5 and Node.js 22 from npm, wrk from apt.
BENCH_STAMP := $(VENV)/.bench-installed
GRAPHENE_VENV := bench/.venv-graphene
GRAPHENE_STAMP := $(GRAPHENE_VENV)/.installed
POSTGRAPHILE_STAMP := bench/postgraphile/node_modules/.installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

$(GRAPHENE_STAMP): bench/graphene-requirements.txt
	@test -x $(GRAPHENE_VENV)/bin/python || $(PYTHON) -m venv $(GRAPHENE_VENV)
	$(GRAPHENE_VENV)/bin/python -m pip install --quiet -r bench/graphene-requirements.txt
	@touch $(GRAPHENE_STAMP)

$(POSTGRAPHILE_STAMP): bench/postgraphile/package.json bench/postgraphile/package-lock.json
	cd bench/postgraphile && npm ci --no-audit --no-fund --loglevel=error
	@touch $(POSTGRAPHILE_STAMP)

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }

# `make bench BENCH_ARGS=--quick` checks the script on small data in about two minutes;
# `make bench BENCH_SCALE=large` then measures gql_blog's feed on a 10x data set too.
bench: $(BENCH_STAMP) $(GRAPHENE_STAMP) $(POSTGRAPHILE_STAMP) wrk
	$(BIN)/python -m bench.run $(BENCH_ARGS) $(if $(filter large,$(BENCH_SCALE)),--large)

# gql_blog's RSS after 10,000 and 100,000 requests of a mixed load (about 6 minutes).
bench-memory: $(BENCH_STAMP) wrk
	$(BIN)/python -m bench.memory $(BENCH_ARGS)

# Where gql_blog's CPU goes (py-spy), with the planner off and on (about 2 minutes).
bench-profile: $(BENCH_STAMP) wrk
	$(BIN)/python -m bench.profile $(BENCH_ARGS)

# The planned reads straight to PostgreSQL and through PgBouncer in transaction mode (about
# 2 minutes; bench/through_pgbouncer.py). BENCH_ARGS=--check starts it all without wrk.
bench-pgbouncer: $(BENCH_STAMP) wrk
	$(BIN)/python -m bench.through_pgbouncer $(BENCH_ARGS)

# Several hosts in network namespaces (root): PostgreSQL primary + replica behind PgBouncer, two
# `gql-blog serve --workers 2` hosts, HAProxy, a client; checks and throughput with 1, 2 and 4
# workers (bench/multihost.py, about 5 minutes). CI runs `make scale-test SCALE_ARGS=--short`.
scale-test: $(STAMP) wrk
	$(BIN)/python -m bench.multihost $(SCALE_ARGS)

# Two workers on PostgreSQL under a mixed load, subscribers listening, 5 minutes (bench/soak).
# CI runs `make soak SOAK_ARGS="--seconds 20"`.
soak: $(STAMP) wrk
	bench/soak $(SOAK_ARGS)

# Every attack class of issue 19 against one gql-blog serve on PostgreSQL and on SQLite
# (bench/attack.py); `make attack ATTACK_ARGS=--quick` checks the script in a few minutes.
attack: $(STAMP)
	$(BIN)/python -m bench.attack $(ATTACK_ARGS)

# 4,000 subscriptions on 200 sockets of one worker, one mutation each way, two rounds: delivery
# latency, mutation time, /healthz, RSS, SQL per event (bench/fanout.py), on SQLite and on the
# servers of GQL_BLOG_TEST_POSTGRES_URL / GQL_BLOG_TEST_MYSQL_URL (scratch databases).
bench-fanout: $(STAMP)
	$(BIN)/python -m bench.fanout $(FANOUT_ARGS)

# Per-parent pages, search and groups: their SQL statements timed on the 10x data set, on each
# database of STATEMENT_URLS (created and seeded on first use; bench/nested_pages.py).
STATEMENT_URLS ?= sqlite+aiosqlite:///bench/results/statements.sqlite \
	postgresql+asyncpg://postgres@127.0.0.1:5432/gqlb_statements \
	mysql+asyncmy://root@127.0.0.1:3306/gqlb_statements
bench-statements: $(STAMP)
	mkdir -p bench/results
	for url in $(STATEMENT_URLS); do \
		$(BIN)/python -m bench.nested_pages prepare $$url && \
		$(BIN)/python -m bench.nested_pages run $$url $(STATEMENT_ARGS) || exit 1; \
	done

# Issue 19's sign-in attack for ten minutes against one gql-blog serve (bench/sign_in_attack.py):
# the owner's success rate and the attacker's password checks per window.
bench-sign-in: $(STAMP)
	$(BIN)/python -m bench.sign_in_attack $(SIGN_IN_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(GRAPHENE_VENV) bench/postgraphile/node_modules \
		examples/node_modules examples/generated
