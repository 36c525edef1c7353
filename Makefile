# offsetstore — run `make` (or `make help`) for the list of targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO            ?= go
TESTFLAGS     ?=
BENCHFLAGS    ?=
FUZZTIME      ?= 30s
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
MIGRATE_CLI   ?= $(GO) run -tags pgx5 github.com/golang-migrate/migrate/v4/cmd/migrate@v4.20.1
POSTGRES_PORT ?= 5432
DATABASE_URL  ?= postgres://offsetstore:offsetstore@127.0.0.1:$(POSTGRES_PORT)/offsetstore?sslmode=disable
MIGRATIONS_TABLE := offsetstore_schema_migrations
# The Go modules of the repository: the core and, nested, the
# OpenTelemetry one (go test ./... does not enter a nested module).
MODULES       := . offsetstoreotel
# each runs its command in every module, stopping at the first failure.
each = set -e; for m in $(MODULES); do echo "== module $$m"; (cd $$m && $(1)); done
# `docker compose` where the plugin exists, else Debian's docker-compose.
COMPOSE       ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

export POSTGRES_PORT

# The migrate CLI's pgx5 driver answers to pgx5://; accept postgres:// too.
migrate_url = $(shell sed -E 's#^postgres(ql)?://#pgx5://#' <<< '$(DATABASE_URL)')$(if $(findstring ?,$(DATABASE_URL)),&,?)x-migrations-table=$(MIGRATIONS_TABLE)

.PHONY: help test test-short bench lint fuzz db-up db-down migrate-up migrate-down

help: ## show this list
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

test: ## run every test of every module, integration and browser tests included, with the race detector (needs Docker, or PostgreSQL's binaries and OFFSETSTORE_TEST_CITUS=skip; chromium and promtool)
	@$(call each,$(GO) test -race -count=1 $(TESTFLAGS) ./...)

test-short: ## run the unit tests only (no database)
	@$(call each,$(GO) test -short -race -count=1 $(TESTFLAGS) ./...)

bench: ## run the benchmarks with their raw-pgx baselines; prints `ratio name=… value=…` lines
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m $(BENCHFLAGS) ./...

lint: ## gofmt (lists unformatted files), go vet and staticcheck, in every module
	@$(call each,files=$$($$($(GO) env GOROOT)/bin/gofmt -l .); if [ -n "$$files" ]; then echo "gofmt: not formatted:"; echo "$$files"; exit 1; fi; $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...)

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME); \
		done; \
	done

db-up: ## start the compose PostgreSQL on 127.0.0.1:$POSTGRES_PORT and wait until it is healthy
	$(COMPOSE) up -d postgres
	@id=$$($(COMPOSE) ps -q postgres); \
	for i in $$(seq 1 120); do \
		s=$$(docker inspect -f '{{.State.Health.Status}}' $$id); \
		if [ "$$s" = healthy ]; then echo "postgres is healthy: $(DATABASE_URL)"; exit 0; fi; \
		sleep 0.5; \
	done; \
	echo "postgres did not become healthy (last status: $$s)" >&2; $(COMPOSE) logs postgres >&2; exit 1

db-down: ## stop the compose PostgreSQL and delete its volume
	$(COMPOSE) down -v

migrate-up: ## apply the migrations to DATABASE_URL with the migrate CLI
	$(MIGRATE_CLI) -path migrations -database '$(migrate_url)' up

migrate-down: ## roll every migration back on DATABASE_URL with the migrate CLI
	$(MIGRATE_CLI) -path migrations -database '$(migrate_url)' down -all

.PHONY: serve
serve: ## offsetstore serve on DATABASE_URL: the status page at http://127.0.0.1:9841/, metrics at /metrics
	$(GO) run ./cmd/offsetstore serve --database-url '$(DATABASE_URL)'

.PHONY: reliability demo
reliability: ## long reliability run (200 kill cycles, 100 failovers, 60 s of load …); figures in reliability-figures.txt
	rm -f reliability-figures.txt
	OFFSETSTORE_CRASH_CYCLES=200 OFFSETSTORE_LOAD_DURATION=60s OFFSETSTORE_SPLIT_DURATION=20s \
	OFFSETSTORE_RESET_DURATION=20s OFFSETSTORE_DROP_ROUNDS=200 OFFSETSTORE_EXACTLY_ONCE_CYCLES=200 \
	OFFSETSTORE_FAILOVER_CYCLES=100 OFFSETSTORE_FIGURES_FILE=$(CURDIR)/reliability-figures.txt \
	$(GO) test -p 1 -count=1 -v -timeout 90m ./internal/reliability/...

demo: ## relay killed mid-way and restarted, nothing lost: the demo on a throwaway container, else PostgreSQL's local binaries
	$(GO) run ./cmd/offsetstore-demo
