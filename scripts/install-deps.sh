#!/usr/bin/env bash
# Installs the Debian packages of one profile; does nothing when all are there.
#   scripts/install-deps.sh runtime   what building and running the agent needs (make install)
#   scripts/install-deps.sh test      runtime + the tools the test suite drives (make test)
# Messages go to stderr: `make run` keeps stdout for the agent's own output.
set -euo pipefail

# clang, llvm, libbpf-dev, bpftool: the BPF object (bpftool dumps the kernel's BTF into
# vmlinux.h); libbpf1: loaded by the agent at run time; gcc, python3-dev: the C extension;
# python3-venv: the virtualenv; make: the build.
RUNTIME=(clang llvm libbpf-dev libbpf1 bpftool libelf-dev make gcc python3-dev python3-venv)
# servers and clients the tests run traffic with, capture tools they compare against, tmux
# (the live view), chromium (the web UI in a browser), libclang-rt-14-dev (fuzzing harnesses),
# nftables (packet loss between test network namespaces)
TEST=(curl nginx-light nghttp2-client nghttp2-server wrk tcpdump tshark iproute2 openssl
      tmux chromium libclang-rt-14-dev nftables)

case "${1:-}" in
  runtime) PACKAGES=("${RUNTIME[@]}") ;;
  test) PACKAGES=("${RUNTIME[@]}" "${TEST[@]}") ;;
  *) echo "usage: $0 runtime|test" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "l7scope: missing Debian packages: ${missing[*]} (run make as root, or apt-get install them)" >&2
  exit 1
fi
echo "l7scope: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
