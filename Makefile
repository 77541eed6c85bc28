# l7scope: `make run` installs everything and runs the agent; `make test` installs and tests.
PYTHON ?= python3
VENV := .venv
BPF_OBJ := l7scope/bpf/l7scope.bpf.o
CLANG ?= clang
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
ARGS ?=

.PHONY: install deps venv bpf run test test-unit test-kernel bench clean

install: deps venv bpf

deps:
	@scripts/install-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard l7scope/dataplane/*.c l7scope/dataplane/*.h)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[export,test]'
	@touch $@

bpf: $(BPF_OBJ)

bpf/vmlinux.h:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJ): bpf/l7scope.bpf.c bpf/l7scope.h bpf/vmlinux.h
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Ibpf -c bpf/l7scope.bpf.c -o $@

run: install
	$(VENV)/bin/l7scope run $(ARGS)

# Under `make test` kernel tests must run: L7SCOPE_REQUIRE_KERNEL turns their skips into failures.
test: install
	L7SCOPE_REQUIRE_KERNEL=1 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests

test-unit: install
	$(VENV)/bin/python -m pytest -q tests --ignore=tests/kernel

test-kernel: install
	L7SCOPE_REQUIRE_KERNEL=1 $(VENV)/bin/python -m pytest -q tests/kernel

bench: install
	$(VENV)/bin/python bench/bench_agent.py

clean:
	rm -rf $(VENV) $(BPF_OBJ) bpf/vmlinux.h build *.egg-info
