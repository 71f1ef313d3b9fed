#!/usr/bin/env bash
# Installs what krill's tests and benchmarks need on a Debian machine (run as root):
# skopeo (registry client), docker-registry (CNCF distribution, the upstream registry), containerd
# (tests start their own, with their own root, state and socket),
# apache2-utils (htpasswd for the registry's basic auth), busybox-static (the /bin/busybox the CRI
# tests' images carry), dnsmasq-base (the DNS server the membership tests start on loopback),
# util-linux-extra (fincore: the direct I/O test checks what reached the page cache), then
# the npm workspaces and containerd 1.7 and 2.1 beside the system's 1.6 (scripts/fetch-containerd.sh,
# unpacked under .krill/, not installed).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "install-deps: krill needs Node.js 20 or newer on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
pkgs=(skopeo docker-registry apache2-utils iproute2 ca-certificates containerd busybox-static dnsmasq-base util-linux-extra)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian docker-registry package starts a system service on :5000; tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
# better-sqlite3 compiles from source; node-gyp would download Node's headers unless told where the
# installed ones are, and only the npm registry and Debian are reachable here.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
  export npm_config_nodedir=/usr
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
bash scripts/fetch-containerd.sh
npx tsc -b
