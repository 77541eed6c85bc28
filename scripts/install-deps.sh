#!/usr/bin/env bash
# Installs the Debian packages l7scope builds with and tests against; does nothing when all are there.
set -euo pipefail
PACKAGES=(gcc python3-dev clang llvm libclang-rt-14-dev libbpf-dev libbpf1 bpftool libelf-dev make curl nginx-light
          nghttp2-client nghttp2-server wrk tcpdump tshark iproute2 openssl tmux
          chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "l7scope: missing Debian packages: ${missing[*]} (run make install as root)" >&2
  exit 1
fi
echo "l7scope: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
