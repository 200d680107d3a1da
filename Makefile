# The project's commands (shared/design.md section 8). Everything a fresh machine needs is provisioned here.
SHELL := /bin/bash
CARGO ?= cargo
DEV_DIR ?= target/dev

.PHONY: all tools test lint unit demo dev-up dev-down crds

all: test

## Provision the local control-plane binaries (kube-apiserver, kube-controller-manager, kubectl, helm).
tools:
	tools/provision.sh

## Every test: formatting, lints, unit, contract and end-to-end tests on a real control plane.
test: tools lint
	$(CARGO) test --lib --bins --tests --no-fail-fast
	$(CARGO) test --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## The main job on embedded defaults: control plane, cimi-sim, operator, examples; until Ctrl-C (DEMO_EXIT=1 exits).
demo: tools
	$(CARGO) build --quiet --bin kubectl-cimi
	$(CARGO) run --quiet --bin cimi-dev -- demo

## A throwaway cluster in the background; kubeconfig at $(DEV_DIR)/kubeconfig.
dev-up: tools
	$(CARGO) run --quiet --bin cimi-dev -- up --dir $(DEV_DIR)

dev-down:
	$(CARGO) run --quiet --bin cimi-dev -- down --dir $(DEV_DIR)

## Regenerate every generated file (CRDs, chart CRDs, reference docs).
crds:
	$(CARGO) run --quiet --bin cimi-operator -- generate --root .
