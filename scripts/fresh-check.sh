#!/usr/bin/env bash
# `make fresh-check`: proves that `make setup` alone turns a bare Debian 12 into a machine that
# builds the workspace and runs its throwaway servers. The developers' machines (and CI, which
# runs on them) keep whatever was ever installed by hand, which hides a missing install step;
# a new root made by debootstrap has none of it.
#
# Steps, each timed: a minbase Debian 12 root from the Debian mirror the host's apt sources
# name (plus `make`, which the README's commands need before setup can run); the host's Rust
# toolchain bind-mounted read-only (a toolchain cannot be downloaded here) and nothing else of
# the host but the network's own trust settings (below); a clean clone of HEAD bind-mounted at
# /work/osp; inside, as root: `make setup`, then
# `cargo check --locked --workspace --all-targets` with a target directory of its own (so
# every build script, protoc included, runs against only what setup installed), then the
# throwaway stack's own test (PostgreSQL, PgBouncer, Temporal dev server started and stopped).
# Mounts, processes and the root are removed on every exit path.
#
# The network's trust settings do go in: extra CA certificates the host trusts
# (/usr/local/share/ca-certificates, such as a TLS-intercepting egress proxy's) and the proxy and
# CA-bundle variables. They describe how this network reaches the package registries, which a
# user's machine on their own network has its own way of; setup installs ca-certificates, whose
# bundle then includes them.
#
# The bare root (before setup ever ran in it) is cached as a tarball under target/fresh-check
# for a week; a root in which setup ran is never reused. The root itself is made under
# $TMPDIR (default /var/tmp), outside the work tree.
# FRESH_CHECK_REV: the commit to check (default HEAD). FRESH_CHECK_KEEP_LOGS=DIR: copy the
# steps' logs there.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suite=bookworm
include="make"
rev=${FRESH_CHECK_REV:-HEAD}
state=$root/target/fresh-check
started=$SECONDS

# The script's own output, kept apart from a step's log: a signal can arrive while a step's
# output is redirected, and the report must still reach the terminal.
exec 3>&1 4>&2
say() { printf 'fresh-check: %s\n' "$*"; }
die() { printf 'fresh-check: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and bind mounts)"
command -v git >/dev/null || die "git is missing"
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The Debian mirror the host's apt uses (deb822 .sources or one-line .list files).
mirror=$(
    cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null | awk '
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm" && uri != "") { print uri; exit } }
        /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) == "bookworm") { print $i; exit } } }' \
        || true
)
[ -n "$mirror" ] || die "no Debian $suite mirror in /etc/apt/sources.list.d or /etc/apt/sources.list"

rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_bin=$(dirname "$(command -v cargo)")
[ -d "$rustup_home/toolchains" ] || die "no Rust toolchain under $rustup_home"

# The root, setup's installs and the two builds in it took 4.2 GB at their peak (sampled with
# df over a whole run); 6 GB leaves room for growth. Fail now, naming the place and the
# figures, rather than halfway through a build with "No space left on device", as a CI run
# once did. FRESH_CHECK_NEED_GB overrides the figure.
need_gb=${FRESH_CHECK_NEED_GB:-6}
tmp_root=${TMPDIR:-/var/tmp}
free_gb=$(df -P -BG "$tmp_root" | awk 'NR == 2 { sub(/G$/, "", $4); print $4 }')
[ "$free_gb" -ge "$need_gb" ] ||
    die "$tmp_root has ${free_gb} GB free; the root and its builds need about ${need_gb} GB (set TMPDIR to a filesystem with more room)"

mkdir -p "$state"
# The root lives outside the work tree: it holds bind mounts of /dev and of the clone, which
# nothing that walks or cleans the tree (grep -r, cargo clean, rm -rf target) may reach.
work=$(mktemp -d "$tmp_root/osp-fresh-check.XXXXXX")
rootfs=$work/root
logs=$work/logs
mkdir -p "$rootfs" "$logs"

# Every step's time, printed at the end whatever happened.
declare -a timings=()
report() {
    local line
    for line in "${timings[@]}"; do say "$line"; done
    say "total $(( (SECONDS - started) / 60 ))m $(( (SECONDS - started) % 60 ))s"
}

processes_in_root() {
    local link pid
    for link in /proc/[0-9]*/root; do
        pid=${link#/proc/}
        pid=${pid%/root}
        [ "$(readlink "$link" 2>/dev/null)" = "$rootfs" ] && printf '%s\n' "$pid"
    done
    return 0
}

cleanup() {
    local status=$? pids mounts
    set +e
    exec 1>&3 2>&4
    pids=$(processes_in_root)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086 # one pid a word
        kill -TERM $pids 2>/dev/null
        for _ in $(seq 50); do [ -z "$(processes_in_root)" ] && break; sleep 0.1; done
        pids=$(processes_in_root)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    fi
    # Innermost first, so that nothing is unmounted from under another mount.
    mounts=$(findmnt -rn -o TARGET | grep "^$rootfs" | sort -r)
    for mount in $mounts; do umount "$mount" 2>/dev/null || umount -l "$mount"; done
    if [ -n "${FRESH_CHECK_KEEP_LOGS:-}" ]; then
        mkdir -p "$FRESH_CHECK_KEEP_LOGS" && cp "$logs"/*.log "$FRESH_CHECK_KEEP_LOGS"/
    fi
    if findmnt -rn -o TARGET | grep -q "^$work"; then
        say "left $work in place: something is still mounted under it" >&2
        status=1
    else
        rm -rf --one-file-system "$work"
    fi
    report
    if [ $status -eq 0 ]; then say "passed"; else say "failed"; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs one step with its output in its own log; on failure shows the log's end and stops.
step() {
    local name=$1 log=$logs/$1.log begun=$SECONDS status=0
    shift
    say "$name ..."
    "$@" >"$log" 2>&1 || status=$?
    timings+=("$(printf '%-14s %3dm %02ds%s' "$name" $(( (SECONDS - begun) / 60 )) $(( (SECONDS - begun) % 60 )) \
        "$([ $status -eq 0 ] || echo "  (failed, exit $status)")")")
    if [ $status -ne 0 ]; then
        printf -- '--- last lines of the %s log\n' "$name" >&2
        tail -n 60 "$log" | cut -c 1-2000 >&2
        die "$name failed (exit $status)"
    fi
}

bare_root() {
    local key tarball
    key=$(printf '%s %s %s' "$suite" "$mirror" "$include" | sha256sum | cut -c1-12)
    tarball=$state/$suite-minbase-$key.tar
    find "$state" -maxdepth 1 -name "$suite-minbase-*.tar" -mtime +7 -delete
    if [ -s "$tarball" ]; then
        echo "unpacking the cached bare root $tarball"
        tar -C "$rootfs" --numeric-owner -xpf "$tarball"
    else
        debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror"
        tar -C "$rootfs" --numeric-owner -cpf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
    fi
}

# Read-only bind mount of a host directory into the root.
bind_ro() {
    mkdir -p "$2"
    mount --bind "$1" "$2"
    mount -o remount,bind,ro "$2"
}

prepare_root() {
    git clone --quiet --no-hardlinks "$root" "$work/clone"
    git -C "$work/clone" checkout --quiet --detach "$(git -C "$root" rev-parse "$rev")"
    echo "checking $(git -C "$work/clone" log -1 --format='%h %s')"
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$rootfs/usr/local/share/ca-certificates/" \;
    mount -t proc proc "$rootfs/proc"
    mount --rbind /dev "$rootfs/dev"
    mount --make-rslave "$rootfs/dev"
    mount -t sysfs sysfs "$rootfs/sys"
    bind_ro "$rustup_home" "$rootfs/opt/rustup"
    bind_ro "$cargo_bin" "$rootfs/opt/cargo-bin"
    mkdir -p "$rootfs/work/osp"
    mount --bind "$work/clone" "$rootfs/work/osp"
}

# The network's proxy and CA-bundle variables, passed into the root as they are.
network_env=()
for variable in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY \
    SSL_CERT_FILE SSL_CERT_DIR PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS \
    CARGO_HTTP_CAINFO GIT_SSL_CAINFO PIP_DEFAULT_TIMEOUT; do
    [ -z "${!variable:-}" ] || network_env+=("$variable=${!variable}")
done

# A command inside the root as root, in the clone, with an environment of its own.
in_root() {
    chroot "$rootfs" /usr/bin/env -i "${network_env[@]}" \
        HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
        PATH=/opt/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        RUSTUP_HOME=/opt/rustup CARGO_HOME=/root/.cargo CARGO_TARGET_DIR=/work/target \
        CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0 \
        /bin/bash -c 'cd /work/osp && "$@"' in-root "$@"
}

say "Debian $suite from $mirror, Rust from $rustup_home, checking $rev"
step debootstrap bare_root
step prepare prepare_root
step setup in_root make setup
step cargo-check in_root cargo check --locked --workspace --all-targets
step stack in_root cargo test --locked -p osp-stack --test stack
