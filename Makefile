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

.PHONY: build venv pg vet gotest test e2e demo bench clean collection lint molecule fuzz soak

# Every fuzz target, as package:target; `make fuzz FUZZTIME=5m` runs longer.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
  ./pkg/ansible:FuzzArgs \
  ./pkg/instance:FuzzParseLayout ./pkg/instance:FuzzParseDuration ./pkg/instance:FuzzParseSize ./pkg/instance:FuzzValidateName \
  ./pkg/pgdump:FuzzVerify \
  ./pkg/backup:FuzzCheckFile ./pkg/backup:FuzzSidecar ./pkg/backup:FuzzPlainDump \
  ./pkg/softdelete:FuzzVerifyArchive ./pkg/softdelete:FuzzDecodeManifest ./pkg/softdelete:FuzzReadTombstone ./pkg/softdelete:FuzzCheckEntry

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
# plugins/modules/<name>.py names the module for ansible-doc and Ansible's
# module lookup; its documentation is the sidecar <name>.yml beside it and
# the action plugin runs it with bin/linux_<arch>/fleetsafe.
module_stub = printf '\# fleetsafe.instances.%s: documented in %s.yml beside this file; run by the\n\# action plugin fleetsafe_binary with the binary bin/linux_<arch>/fleetsafe.\n' $(1) $(1) > $(2)/plugins/modules/$(1).py
GOFLAGS_BUILD := -trimpath -ldflags='-s -w -X main.version=$(VERSION)'
build:
	@mkdir -p $(LIBRARY)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(LIBRARY)/fleetsafe ./cmd/fleetsafe
	@for m in $(MODULES); do \
	  ln -f $(LIBRARY)/fleetsafe $(LIBRARY)/$$m || exit 1; \
	  cp modules/$$m/$$m.yml $(LIBRARY)/$$m.yml; \
	done
	@echo "built $(LIBRARY)/fleetsafe, linked as $(MODULES)"
	@rm -rf $(COLL_DIR) && mkdir -p $(COLL_DIR)/bin/linux_amd64 $(COLL_DIR)/plugins/modules
	@cp -r collection/. $(COLL_DIR)/
	@cp $(LIBRARY)/fleetsafe $(COLL_DIR)/bin/linux_amd64/fleetsafe
	@$(call sha_sidecar,$(COLL_DIR)/bin/linux_amd64/fleetsafe)
	@for m in $(MODULES); do cp modules/$$m/$$m.yml $(COLL_DIR)/plugins/modules/ && $(call module_stub,$$m,$(COLL_DIR)); done
	@echo "assembled the fleetsafe.instances collection in $(COLL_DIR)/"

# The release collection: one multi-call binary per platform,
# bin/linux_amd64/fleetsafe and bin/linux_arm64/fleetsafe (outside
# plugins/, not executable in the tarball: the action plugin copies the
# target's one into its cache there), the action plugin, docs, README and
# changelog, packed by ansible-galaxy. Galaxy refuses tarballs of 20 MB or
# more; this target does too.
GALAXY_MAX := 20000000
collection: venv
	@rm -rf build/collection-src && mkdir -p $(COLL_SRC)/bin/linux_amd64 $(COLL_SRC)/bin/linux_arm64 $(COLL_SRC)/plugins/modules
	@cp -r collection/. $(COLL_SRC)/
	@for arch in amd64 arm64; do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build $(GOFLAGS_BUILD) -o $(COLL_SRC)/bin/linux_$$arch/fleetsafe ./cmd/fleetsafe || exit 1; \
	  chmod 0644 $(COLL_SRC)/bin/linux_$$arch/fleetsafe; \
	  $(call sha_sidecar,$(COLL_SRC)/bin/linux_$$arch/fleetsafe); \
	done
	@for m in $(MODULES); do cp modules/$$m/$$m.yml $(COLL_SRC)/plugins/modules/ && $(call module_stub,$$m,$(COLL_SRC)); done
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

# The model-based state machines (internal/model) for SOAKTIME instead of
# the few sequences `make test` runs; without -race, for more steps. Add
# FLEETSAFE_MODEL_OPEN_BUGS=1 to assert the open bugs they step around.
SOAKTIME ?= 10m
soak: pg
	FLEETSAFE_REQUIRE_PG=1 FLEETSAFE_SOAK=$(SOAKTIME) $(GO) test -count=1 -timeout 0 -run 'TestModel_Fleet' ./internal/model -rapid.steps=40 -rapid.checks=4

vet:
	@test -z "$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*' -not -path './.venv/*'))" || { echo "gofmt needed:"; gofmt -l $$(find . -name '*.go' -not -path './.cache/*' -not -path './.venv/*'); exit 1; }
	$(GO) vet ./...

# The model-based state machines (internal/model) run briefly here, one
# sequence of a fixed seed and the layout properties, without -race; the
# rest of them, longer, in `make soak`.
gotest: venv build pg
	FLEETSAFE_REQUIRE_PG=1 FLEETSAFE_REQUIRE_ANSIBLE=1 $(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/internal/model$$')
	FLEETSAFE_REQUIRE_PG=1 $(GO) test -count=1 ./internal/model -run 'TestLayout|TestModel_NewestIsTheLastDeletion|TestModel_Fleet' -rapid.checks=1 -rapid.steps=15 -rapid.seed=7

# Module docs as ansible-doc shows them, and a real playbook run.
e2e: venv build pg collection
	@for m in $(MODULES); do ansible-doc -M $(LIBRARY) $$m >/dev/null || { echo "ansible-doc failed for $$m"; exit 1; }; done
	@echo "ansible-doc: $(MODULES) ok"
	bash scripts/collection-test.sh $(CURDIR)/build/fleetsafe-instances-$(VERSION).tar.gz

lint: venv build
	ansible-lint playbooks/ molecule/
	ansible-playbook --syntax-check playbooks/awx/configure_awx.yml

# Ansible-native scenarios against localhost (no containers here).
molecule: venv build pg
	molecule test --all

test: venv build pg vet gotest e2e lint molecule
	@echo "make test: all passed"

demo: venv build pg
	bash scripts/demo.sh

# Speed against the tools a user would use instead, as ratios in one run.
# bench/transfer: bytes sent and time of BENCH_TASKS tasks on BENCH_HOSTS
# inventory hosts over SSH (a private sshd on the loopback,
# scripts/sshd-up.sh), the binary copied per task (before) against the
# action plugin's cache (after, cold and warm).
BENCH_HOSTS ?= 20
BENCH_TASKS ?= 20
bench: venv build pg
	$(GO) run ./bench/softdelete -module $(LIBRARY)/instance_soft_delete
	$(GO) run ./bench/verify -module $(LIBRARY)/backup_verify
	bash scripts/sshd-up.sh
	$(GO) run ./bench/transfer -hosts $(BENCH_HOSTS) -tasks $(BENCH_TASKS)

clean:
	rm -rf build
