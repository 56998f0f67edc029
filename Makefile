# fleetsafe — the two commands are `make demo` and `make test`; both set up
# everything they need (virtualenv, Go build, PostgreSQL).
# `make soak SOAKTIME=10m` runs the model-based state machines for longer.
SHELL := /bin/bash
.DEFAULT_GOAL := build

PYTHON   ?= python3.11
VENV     := .venv
VENV_OK  := $(VENV)/.installed
MODULES  := $(notdir $(patsubst %/,%,$(wildcard modules/*/)))
LIBRARY  := build/library
COLL_DIR := build/collections/ansible_collections/fleetsafe/instances
GO       ?= go
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

VERSION  := $(shell awk '/^version:/ {print $$2}' collection/galaxy.yml)
COLL_SRC := build/collection-src/fleetsafe/instances
# The collection's plugins/modules/<name>.py: each module's documentation
# (from modules/<name>/<name>.yml) in a doc-only Python file.
DOCSTUBS := $(VENV)/bin/python scripts/docstubs.py
# The targets that rebuild build/, as the other targets name them among
# their prerequisites: `make test` builds once, then runs its lanes with
# these empty (BUILD= COLLECTION= COLLECTION_TH=). Defined here, before any
# rule reads them.
BUILD := build
COLLECTION := collection
COLLECTION_TH := collection-testhooks

.PHONY: build venv pg mariadb s3 vet gotest test e2e demo bench clean collection collection-testhooks lint molecule fuzz soak promtool monitoring certify certify-matrix test-matrix molecule-others

# Every fuzz target, as package:target; `make fuzz FUZZTIME=5m` runs longer.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
  ./pkg/ansible:FuzzArgs \
  ./pkg/instance:FuzzParseLayout ./pkg/instance:FuzzParseDuration ./pkg/instance:FuzzParseSize ./pkg/instance:FuzzValidateName \
  ./pkg/pgdump:FuzzVerify \
  ./pkg/backup:FuzzCheckFile ./pkg/backup:FuzzCheckFileKinds ./pkg/backup:FuzzSidecar ./pkg/backup:FuzzPlainDump \
  ./pkg/archive:FuzzVerifyArchive ./pkg/archive:FuzzDecodeManifest ./pkg/softdelete:FuzzReadTombstone ./pkg/archive:FuzzCheckEntry

venv: $(VENV_OK)
$(VENV_OK): requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (see README)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# One multi-call binary (cmd/fleetsafe) serves every module; each
# build/library/<module> is a hard link to it (a file named after a module
# is that module), for ansible.cfg's library path.
# <binary>.sha256 holds "<sha256> <size>": the action plugin reads it rather
# than hashing the binary for every task.
sha_sidecar = echo "$$(sha256sum $(1) | cut -d' ' -f1) $$(stat -c %s $(1))" > $(1).sha256
# `make build` (the tests, the demo, molecule) builds the test hooks in
# (the build tag fleetsafe_testhooks: FLEETSAFE_TEST_CRASH_AFTER,
# FLEETSAFE_SYSTEMD_DIR, FLEETSAFE_SYSTEMCTL; internal/testhooks);
# the release binaries of `make collection` are built without them.
GOFLAGS_BUILD := -trimpath -ldflags='-s -w -X main.version=$(VERSION)'
TESTHOOKS := -tags fleetsafe_testhooks
build: venv
	@mkdir -p $(LIBRARY)
	CGO_ENABLED=0 $(GO) build $(TESTHOOKS) $(GOFLAGS_BUILD) -o $(LIBRARY)/fleetsafe ./cmd/fleetsafe
	@for m in $(MODULES); do \
	  ln -f $(LIBRARY)/fleetsafe $(LIBRARY)/$$m || exit 1; \
	  cp modules/$$m/$$m.yml $(LIBRARY)/$$m.yml; \
	done
	@echo "built $(LIBRARY)/fleetsafe, linked as $(MODULES)"
	@rm -rf $(COLL_DIR) && mkdir -p $(COLL_DIR)/binaries/linux_amd64
	@cp -r collection/. $(COLL_DIR)/
	@cp $(LIBRARY)/fleetsafe $(COLL_DIR)/binaries/linux_amd64/fleetsafe
	@$(call sha_sidecar,$(COLL_DIR)/binaries/linux_amd64/fleetsafe)
	@$(DOCSTUBS) modules $(COLL_DIR)/plugins/modules
	@echo "assembled the fleetsafe.instances collection in $(COLL_DIR)/"

# The release collection: one multi-call binary per platform,
# binaries/linux_amd64/fleetsafe and binaries/linux_arm64/fleetsafe
# (outside plugins/ and bin/, which ansible-doc, ansible-test and
# galaxy-importer read as text or Python; not executable in the tarball:
# the action plugin copies the target's one into its cache there), each
# module's documentation in plugins/modules/<name>.py, the action plugin,
# README and changelog, packed by ansible-galaxy. Galaxy refuses tarballs
# of 20 MB or more; this target does too.
GALAXY_MAX := 20000000
collection: venv
	@rm -rf build/collection-src && mkdir -p $(COLL_SRC)/binaries/linux_amd64 $(COLL_SRC)/binaries/linux_arm64
	@cp -r collection/. $(COLL_SRC)/
	@for arch in amd64 arm64; do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build $(GOFLAGS_BUILD) -o $(COLL_SRC)/binaries/linux_$$arch/fleetsafe ./cmd/fleetsafe || exit 1; \
	  chmod 0644 $(COLL_SRC)/binaries/linux_$$arch/fleetsafe; \
	  $(call sha_sidecar,$(COLL_SRC)/binaries/linux_$$arch/fleetsafe); \
	done
	@$(DOCSTUBS) modules $(COLL_SRC)/plugins/modules
	ansible-galaxy collection build $(COLL_SRC) --output-path build --force
	@ls -la build/fleetsafe-instances-$(VERSION).tar.gz
	@size=$$(stat -c %s build/fleetsafe-instances-$(VERSION).tar.gz); \
	  [ $$size -lt $(GALAXY_MAX) ] || { echo "the tarball is $$size bytes, Galaxy takes less than $(GALAXY_MAX)"; exit 1; }

# Runs each fuzz target for FUZZTIME. A crasher is saved under the
# package's testdata/fuzz/ and then runs with every `go test`.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== $$name ($$pkg, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg || exit 1; \
	done

pg:
	@bash scripts/pg-up.sh

# MariaDB from Debian's packages (installed when missing), for the mysql
# kind's tests; `make test` sets FLEETSAFE_REQUIRE_MARIADB=1 so that they
# fail rather than skip without it.
mariadb:
	@bash scripts/mariadb-up.sh

# A local S3 server with Object Lock (Versity's gateway, built once into
# .cache/), for the S3 archive store's tests; `make test` sets
# FLEETSAFE_REQUIRE_S3=1 so that they fail rather than skip without it.
# `eval "$$(bash scripts/s3-up.sh)"` puts its endpoint and credentials in
# a shell's environment.
s3:
	@bash scripts/s3-up.sh >/dev/null
	@bash scripts/age-up.sh >/dev/null

# promtool, from Debian's prometheus package (installed when missing).
promtool:
	@bash scripts/promtool-up.sh

# The alerting rules: syntax and templates, then their unit tests. The Go
# test in monitoring/ (run by gotest) tests them against metrics files
# that the real backup_verify wrote, and checks the dashboard's queries.
monitoring: promtool
	promtool check rules monitoring/alerts.yml
	promtool test rules monitoring/tests/*.yml

# The model-based tests (internal/model) for SOAKTIME, shared among them as
# in `make test` (whose budget is MODEL_BUDGET, 20 s), with longer sequences and
# without -race; the time each kind of step took is printed at the end. Add
# FLEETSAFE_MODEL_OPEN_BUGS=1 to assert the open bugs they step around.
SOAKTIME ?= 10m
soak: pg mariadb
	FLEETSAFE_REQUIRE_PG=1 FLEETSAFE_REQUIRE_MARIADB=1 FLEETSAFE_SOAK=$(SOAKTIME) FLEETSAFE_MODEL_TIMING=1 $(GO) test -count=1 -timeout 0 -v ./internal/model -rapid.steps=40 2>&1 | grep -v '\[rapid\] draw'; exit $${PIPESTATUS[0]}

vet:
	@test -z "$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*' -not -path './.venv/*'))" || { echo "gofmt needed:"; gofmt -l $$(find . -name '*.go' -not -path './.cache/*' -not -path './.venv/*'); exit 1; }
	$(GO) vet ./...
	@! $(GO) list -deps ./cmd/fleetsafe-sandbox ./cmd/fleetsafe | grep -E '^testing(/|$$)' || { echo "cmd/fleetsafe or cmd/fleetsafe-sandbox links package testing (see internal/fleetgen)"; exit 1; }

# The Go tests, in three go test runs at the same time:
# - RACE_PKGS under the race detector: the product's code tested in its
#   own process, where its goroutines run (pkg/...: the parallel walk of
#   softdelete, asynchash, childproc, streamguard, the S3 store's uploads,
#   pgdump's and mariadb's readers; internal/modutil and internal/testhooks,
#   linked into the binary; internal/attack6, whose purges run in-process
#   beside a soft delete).
# - NORACE_PKGS without it: tests that drive the built binary or
#   ansible-playbook as subprocesses (modules/..., cmd/..., internal/attack
#   to attack5, monitoring, internal/awxsurvey) and test helpers. The
#   binaries they run are built without -race whatever go test's flags
#   (internal/fleettest.BuildFleetsafe), and the goroutines of these tests
#   only wait for subprocesses; the library code they call in-process
#   (softdelete.Restore to check an outcome) is the code RACE_PKGS tests
#   under the detector. The detector multiplied their CPU time for nothing
#   it could see.
# - internal/model (race detector on: its machines run deletions at once
#   in-process), at the same time as both: random sequences (a new seed
#   each, printed on failure) within a wall-clock budget, MODEL_BUDGET
#   (20 s; every machine still runs its minimum of sequences); `make soak`
#   runs them for SOAKTIME (10 minutes) with longer sequences. It waits
#   far more than it computes (about 14 s of CPU for 4 to 5 minutes on a
#   machine at a load of 20; the next second of an archive name, sessions
#   that end, PostgreSQL), so it costs the other two little.
# The playbooks' tests (./playbooks) run on each supported ansible-core
# instead (core-SERIES below).
# FLEETSAFE_TEST_FLEETSAFE: the tests copy build/library/fleetsafe (just
# built by `make build`, same tree, same tags) instead of linking their own.
# go test's default is 10 minutes per test binary; a package taking
# ~160 s under -race on 2 idle cores can take several times that on CI's
# loaded machine (every package runs in parallel). A real hang still ends
# the run, with every goroutine's stack.
GOTEST_TIMEOUT ?= 45m
MODEL_BUDGET ?= 20s
MODULE_PATH = $(shell $(GO) list -m)
# The slowest packages of each set are named first: go test starts them
# first, so that they do not run alone at the end.
RACE_SLOW = $(addprefix $(MODULE_PATH)/,pkg/softdelete pkg/backup)
NORACE_SLOW = $(addprefix $(MODULE_PATH)/,modules/instance_soft_delete modules/instance_restore modules internal/attack3 internal/attack5)
RACE_PKGS = $(RACE_SLOW) $(filter-out $(RACE_SLOW),$(shell $(GO) list ./pkg/... ./internal/modutil ./internal/testhooks ./internal/attack6))
NORACE_PKGS = $(NORACE_SLOW) $(filter-out $(RACE_PKGS) $(NORACE_SLOW) $(MODULE_PATH)/internal/model $(MODULE_PATH)/playbooks,$(shell $(GO) list ./...))
GOTEST_ENV := FLEETSAFE_REQUIRE_PG=1 FLEETSAFE_REQUIRE_MARIADB=1 FLEETSAFE_REQUIRE_S3=1 FLEETSAFE_REQUIRE_ANSIBLE=1 FLEETSAFE_REQUIRE_PROMTOOL=1 FLEETSAFE_TEST_FLEETSAFE=$(CURDIR)/$(LIBRARY)/fleetsafe
gotest: venv $(BUILD) pg mariadb s3 promtool
	@$(GOTEST_ENV) $(GO) test -race -count=1 -timeout $(GOTEST_TIMEOUT) $(RACE_PKGS) & race=$$!; \
	$(GOTEST_ENV) $(GO) test -count=1 -timeout $(GOTEST_TIMEOUT) $(NORACE_PKGS) & norace=$$!; \
	$(GOTEST_ENV) FLEETSAFE_MODEL_BUDGET=$(MODEL_BUDGET) $(GO) test -race -count=1 -timeout $(GOTEST_TIMEOUT) ./internal/model & model=$$!; \
	wait $$race; r=$$?; wait $$norace; n=$$?; wait $$model; m=$$?; \
	[ $$r -eq 0 ] || echo "gotest: the packages under -race failed"; \
	[ $$n -eq 0 ] || echo "gotest: the packages without -race failed"; \
	[ $$m -eq 0 ] || echo "gotest: internal/model failed"; \
	[ $$r -eq 0 ] && [ $$n -eq 0 ] && [ $$m -eq 0 ]

# Module docs as ansible-doc shows them, and a real playbook run.
e2e: venv $(BUILD) pg mariadb $(COLLECTION)
	@for m in $(MODULES); do ansible-doc -M $(LIBRARY) $$m >/dev/null || { echo "ansible-doc failed for $$m"; exit 1; }; done
	@echo "ansible-doc: $(MODULES) ok"
	bash scripts/collection-test.sh $(CURDIR)/build/fleetsafe-instances-$(VERSION).tar.gz

lint: venv $(BUILD)
	ansible-lint playbooks/ molecule/
	ansible-playbook --syntax-check playbooks/awx/configure_awx.yml

# Ansible-native scenarios against localhost (no containers here).
molecule: venv build pg
	molecule test --all

# Every scenario but default, which `make test` runs on the oldest and the
# newest ansible-core (core-SERIES below), all at the same time (each has
# its own sandbox /tmp/fleetsafe-molecule-<scenario>, marker and molecule
# state; no dependency step), each one's output in
# build/molecule-<scenario>.log, printed when all have ended.
MOLECULE_OTHERS := $(filter-out default,$(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
molecule-others: venv $(BUILD) pg
	@mkdir -p build; pids=; \
	for s in $(MOLECULE_OTHERS); do molecule test -s $$s > build/molecule-$$s.log 2>&1 & pids="$$pids $$!"; done; \
	rc=0; set -- $(MOLECULE_OTHERS); for p in $$pids; do \
	  if wait $$p; then r=passed; else r=FAILED; rc=1; fi; \
	  echo "== molecule scenario $$1 $$r (build/molecule-$$1.log)"; cat build/molecule-$$1.log; shift; \
	done; exit $$rc

# `make test` builds everything once (build, collection and its test-hooks
# twin), then runs three lanes at the same time, each a list of targets one
# after the other:
# - vet and the Go tests (gotest);
# - monitoring, e2e, lint, molecule-others;
# - core-2.16, core-2.21, certify (the only targets that make or use the
#   venvs of scripts/ansible-venv.sh, so that no two make one at once).
# The first two lanes' output goes to build/lane-go.log and
# build/lane-tools.log, printed when all three are done; the third prints
# as it goes. The Python lanes are mostly one process at a time
# (ansible-playbook, molecule, ansible-lint, ansible-test, pip), and much
# of the Go tests' time is waiting (PostgreSQL, subprocesses): one after
# the other they left the cores idle. The lanes share nothing they write:
# each test makes its own directories, databases (random names) and
# buckets, each molecule scenario its own /tmp/fleetsafe-molecule-<scenario>.
# The lanes are sub-makes given BUILD= COLLECTION= COLLECTION_TH= (see the
# top of this file), so that no target of one rebuilds build/ under another.
LANE := $(MAKE) --no-print-directory -j1 BUILD= COLLECTION= COLLECTION_TH=
test: venv build pg mariadb s3 promtool collection collection-testhooks
	@echo "== make test: three lanes at once: vet gotest (build/lane-go.log) | monitoring e2e lint molecule-others (build/lane-tools.log) | core-2.16 core-2.21 certify (below)"
	@rm -f build/lane-go.log build/lane-tools.log; \
	$(LANE) vet gotest > build/lane-go.log 2>&1 & g=$$!; \
	$(LANE) monitoring e2e lint molecule-others > build/lane-tools.log 2>&1 & o=$$!; \
	$(LANE) core-2.16 core-2.21 certify; a=$$?; \
	wait $$o; t=$$?; wait $$g; r=$$?; \
	echo "== make test: monitoring, e2e, lint, molecule-others (build/lane-tools.log)"; cat build/lane-tools.log; \
	echo "== make test: vet and the Go tests (build/lane-go.log)"; cat build/lane-go.log; \
	[ $$a -eq 0 ] || echo "make test: core-2.16, core-2.21 or certify failed (above)"; \
	[ $$t -eq 0 ] || echo "make test: monitoring, e2e, lint or molecule-others failed (build/lane-tools.log)"; \
	[ $$r -eq 0 ] || echo "make test: vet or the Go tests failed (build/lane-go.log)"; \
	[ $$a -eq 0 ] && [ $$t -eq 0 ] && [ $$r -eq 0 ]
	@echo "make test: all passed"

# The demo's last acts soft-delete to the local S3 server (s3: Versity's
# gateway, and age) and restore on another host from the bucket alone.
demo: venv build pg mariadb s3
	bash scripts/demo.sh

# Speed against the tools a user would use instead, as ratios in one run.
# bench/transfer: bytes sent and time of BENCH_TASKS tasks on BENCH_HOSTS
# inventory hosts over SSH (a private sshd on the loopback,
# scripts/sshd-up.sh), the binary copied per task (before) against the
# action plugin's cache (after, cold and warm).
BENCH_HOSTS ?= 20
BENCH_TASKS ?= 20
bench: venv build pg s3
	$(GO) run ./bench/softdelete -module $(LIBRARY)/instance_soft_delete
	$(GO) run ./bench/s3 -module $(LIBRARY)/instance_soft_delete -mib 1024
	$(GO) run ./bench/verify -module $(LIBRARY)/backup_verify
	$(GO) run ./bench/pgcustom
	$(GO) run ./bench/recover -fleetsafe $(LIBRARY)/fleetsafe
	bash scripts/sshd-up.sh
	$(GO) run ./bench/plan -hosts 200 -limited=false
	$(GO) run ./bench/transfer -hosts $(BENCH_HOSTS) -tasks $(BENCH_TASKS)

clean:
	rm -rf build

# ---- Supported ansible-core versions and certification (issue 10) ----
#
# core-SERIES: the playbooks (their Go tests) and the default molecule
# scenario on one ansible-core series, in a virtualenv of its own made by
# scripts/ansible-venv.sh (.cache/ansible-SERIES; made once, kept while its
# pins hold), the two at the same time (distinct sandboxes; the molecule
# scenario's is its own /tmp/fleetsafe-molecule-default, so two series
# never run at once). `make test` runs the oldest supported series (2.16,
# the collection's requires_ansible) and the newest (2.21); the project
# venv's 2.19 runs everything else. `make test-matrix` runs all four.
#
# PLAYBOOKS_SKIP_SERIES: playbook tests a series does not run. The
# TestAWX_ tests drive ansible-runner from the project venv, which runs the
# project venv's ansible-playbook (2.19) whatever the series: on every
# series but the newest they ran the same 2.19 again (about 230 s of 2.16's
# run on a loaded machine), so they run once, in core-2.21. Every other
# playbook test runs on both series.
PLAYBOOKS_SKIP_2.16 := -skip '^TestAWX_'
PLAYBOOKS_SKIP_2.19 := $(PLAYBOOKS_SKIP_2.16)
PLAYBOOKS_SKIP_2.20 := $(PLAYBOOKS_SKIP_2.16)
CORE_SERIES := 2.16 2.19 2.20 2.21
core-%: $(BUILD) pg
	@v=$$(bash scripts/ansible-venv.sh $*) && echo "== ansible-core $*: $$($$v/bin/ansible --version | head -1)" && \
	{ FLEETSAFE_ANSIBLE_VENV=$$v FLEETSAFE_COLLECTION_TARBALL=$(TARBALL_$*) FLEETSAFE_RELEASE_TARBALL=$(RELEASE_$*) FLEETSAFE_REQUIRE_PG=1 FLEETSAFE_REQUIRE_ANSIBLE=1 FLEETSAFE_TEST_FLEETSAFE=$(CURDIR)/$(LIBRARY)/fleetsafe $(GO) test -count=1 -timeout $(GOTEST_TIMEOUT) $(PLAYBOOKS_SKIP_$*) ./playbooks & pb=$$!; \
	  PATH=$$v/bin:$$PATH molecule test -s default; m=$$?; wait $$pb; p=$$?; \
	  [ $$p -eq 0 ] || echo "core-$*: the playbooks' tests failed on ansible-core $*"; \
	  [ $$m -eq 0 ] || echo "core-$*: molecule's default scenario failed on ansible-core $*"; \
	  [ $$p -eq 0 ] && [ $$m -eq 0 ]; }

# The newest series runs the playbooks on a collection tarball installed by
# ansible-galaxy as a user installs it: the release's tree, packed the same
# way, except that its linux/amd64 binary is built with the test hooks
# (the sandbox fleet has no systemd; its unit tree is given by
# FLEETSAFE_SYSTEMD_DIR, which release binaries ignore).
TH_SRC := build/testhooks/src/fleetsafe/instances
collection-testhooks: collection
	@rm -rf build/testhooks && mkdir -p build/testhooks/src/fleetsafe && cp -r $(COLL_SRC) $(TH_SRC)
	@CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build $(TESTHOOKS) $(GOFLAGS_BUILD) -o $(TH_SRC)/binaries/linux_amd64/fleetsafe ./cmd/fleetsafe
	@chmod 0644 $(TH_SRC)/binaries/linux_amd64/fleetsafe && $(call sha_sidecar,$(TH_SRC)/binaries/linux_amd64/fleetsafe)
	@ansible-galaxy collection build $(TH_SRC) --output-path build/testhooks --force >/dev/null
core-2.21: $(COLLECTION_TH)
TARBALL_2.21 = $(abspath build/testhooks/fleetsafe-instances-$(VERSION).tar.gz)
# The release tarball itself (release binaries, no test hooks), installed
# alone into an empty collections path: fleet_report.yml and a
# delete/restore round trip on a sandbox (playbooks
# TestReleaseTarball_PlaybooksFromTheInstallAlone; skipped on the other series).
RELEASE_2.21 = $(abspath build/fleetsafe-instances-$(VERSION).tar.gz)

test-matrix: $(addprefix core-,$(CORE_SERIES))
	@echo "make test-matrix: the playbooks and the default molecule scenario pass on ansible-core $(CORE_SERIES)"

# What Galaxy and Automation Hub check before they publish: `ansible-test
# sanity` (2.21) and galaxy-importer on the release tarball, the
# changelog's fragments, the execution environment's definition, and a
# tidy go.mod.
certify: venv $(COLLECTION)
	$(GO) mod tidy -diff
	cd collection && ../$(VENV)/bin/antsibull-changelog lint
	bash scripts/sanity.sh build/fleetsafe-instances-$(VERSION).tar.gz
	bash scripts/importer-check.sh build/fleetsafe-instances-$(VERSION).tar.gz
	@rm -rf build/ee && ansible-builder create -f execution-environment.yml -c build/ee >/dev/null
	@grep -q 'ANSIBLE_INSTALL_REFS="ansible-core==2.21' build/ee/Dockerfile || { echo "certify: ansible-builder create made no build context for ansible-core 2.21"; exit 1; }
	@cmp -s collections/requirements.yml build/ee/_build/requirements.yml || { echo "certify: the execution environment does not install collections/requirements.yml"; exit 1; }
	@echo "certify: ansible-builder create accepts execution-environment.yml"

# `ansible-test sanity` on the release tarball with the other supported
# series (certify runs 2.21), each against its own
# collection/tests/sanity/ignore-SERIES.txt. Not in `make test`: 2.16 took
# 17 minutes on this machine under a load average of 20, 2.20 and 2.19 about
# 5 minutes each under 12 (every sanity test's venv is made with its
# requirements from the package index).
SANITY_SERIES := 2.16 2.19 2.20
certify-matrix: venv collection
	@for s in $(SANITY_SERIES); do echo "== ansible-test sanity, ansible-core $$s"; \
	  bash scripts/sanity.sh build/fleetsafe-instances-$(VERSION).tar.gz $$s || exit 1; done
	@echo "certify-matrix: ansible-test sanity passes on ansible-core $(SANITY_SERIES)"

