#!/usr/bin/env bash
# Installs what `make bench` needs beyond `make setup`: the Node peer's npm packages
# (crates/osp-tools/bench/node-peer, pinned in its package.json and package-lock.json) into
# its node_modules (git-ignored). Does nothing when they are installed from the same lock and
# load. Not part of `make test`: only the benchmark runs the Node worker.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peer=$root/crates/osp-tools/bench/node-peer
# Written after a complete `npm ci`: the lock file's hash it installed.
stamp=$peer/node_modules/.osp-installed-lock

say() { printf 'bench-setup: %s\n' "$*"; }
die() { printf 'bench-setup: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null 2>&1 \
    || die "node is not on PATH: the benchmark's Node peer needs Node.js >= 20.3 and npm (Debian: apt-get install nodejs npm; make setup installs npm)"
command -v npm >/dev/null 2>&1 \
    || die "npm is not on PATH: the benchmark's Node peer is installed with npm ci (make setup installs npm)"
node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 3) ? 0 : 1)' \
    || die "node $(node --version) is too old: @temporalio 1.24 needs >= 20.3.0"

# The peer loads when its SDK's native core-bridge does: checked by use, not by file names.
loads() {
    (cd "$peer" && node --input-type=module -e "await import('@temporalio/worker'); await import('pg');") >/dev/null 2>&1
}

wanted=$(sha256sum "$peer/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && loads; then
    exit 0
fi
say "installing the Node peer's packages (npm ci in ${peer#"$root"/})"
rm -f "$stamp"
(cd "$peer" && npm ci --no-audit --no-fund --loglevel=error)
loads || die "the Node peer's packages are installed but @temporalio/worker or pg does not load; run: cd ${peer#"$root"/} && node -e \"import('@temporalio/worker')\""
printf '%s\n' "$wanted" >"$stamp"
say "Node peer ready: $(cd "$peer" && node -p "'@temporalio/worker ' + require('@temporalio/worker/package.json').version + ', pg ' + require('pg/package.json').version") on node $(node --version)"
