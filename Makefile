# l7scope: `make install` builds what the agent needs to run; `make run ARGS=...` installs and
# runs it (its stdout is the agent's alone); `make test` adds the test tools and runs every test.
PYTHON ?= python3
VENV := .venv
BPF_OBJ := l7scope/bpf/l7scope.bpf.o
CLANG ?= clang
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
ARGS ?=

.PHONY: install deps venv bpf test-install test-deps run test test-unit test-kernel bench clean

# runtime: Debian packages, the venv with the agent and its exporters, the BPF object
install: deps venv bpf

deps:
	@scripts/install-deps.sh runtime

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard l7scope/dataplane/*.c l7scope/dataplane/*.h)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[export]'
	@touch $@

# the tests' own Debian packages (servers, clients, capture tools, tmux, chromium) and the
# venv's test extras: never on a host that only runs the agent
test-install: install test-deps $(VENV)/.installed-test

test-deps:
	@scripts/install-deps.sh test

$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[export,test]'
	@touch $@

bpf: $(BPF_OBJ)

bpf/vmlinux.h:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

# generated from the protocol registry's one method list: the kernel prefilter agrees with user
# space (the list lives in the compiled analyzer, so the venv and its extension come first)
bpf/l7_http_methods.h: scripts/gen_http_methods.py $(VENV)/.installed \
		l7scope/protocols/registry.py l7scope/protocols/http/spec.py
	$(VENV)/bin/python scripts/gen_http_methods.py $@

# the wire layout and .rodata knobs user space packs and unpacks, read from the one C header
l7scope/capture/wire_layout.py: bpf/l7scope.h scripts/gen_wire_layout.py
	$(PYTHON) scripts/gen_wire_layout.py $@

$(BPF_OBJ): bpf/l7scope.bpf.c bpf/l7scope.h bpf/l7_http_methods.h bpf/vmlinux.h \
		l7scope/capture/wire_layout.py
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Ibpf -c bpf/l7scope.bpf.c -o $@

# Everything before the agent's own output goes to stderr (make's echoed commands too), so
# `make run ARGS="--output jsonl:-"` writes nothing but JSON Lines to stdout.
run:
	@$(MAKE) --no-print-directory install >&2
	@$(VENV)/bin/l7scope run $(ARGS)

# Under `make test` kernel tests must run: L7SCOPE_REQUIRE_KERNEL turns their skips into failures.
test: test-install
	L7SCOPE_REQUIRE_KERNEL=1 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests

test-unit: test-install
	$(VENV)/bin/python -m pytest -q tests --ignore=tests/kernel

test-kernel: test-install
	L7SCOPE_REQUIRE_KERNEL=1 $(VENV)/bin/python -m pytest -q tests/kernel

bench: test-install
	$(VENV)/bin/python bench/bench_agent.py

clean:
	rm -rf $(VENV) $(BPF_OBJ) bpf/vmlinux.h build *.egg-info
