#!/usr/bin/env bash
# Offline checks of deploy/: hadolint on the Dockerfiles, shellcheck on the scripts, helm lint
# --strict and helm template for every value set in deploy/test/values (and the defaults) on
# the oldest and newest Kubernetes versions the chart targets, kubernetes-validate --strict
# on every rendering, the custom resources against our own strict schemas (deploy/test/cr_schemas.py), the chart's promises
# (deploy/test/check_renderings.py), yamllint, and the failures that must happen: every file
# in deploy/test/invalid fails helm lint --strict with the schema's message, a misspelt field
# fails kubernetes-validate --strict and the CRD check. Called by `make deploy-lint`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deploy=$root/deploy
chart=$deploy/helm/osp
helm=${HELM:-$root/.tools/bin/helm}
# The chart's kubeVersion floor and the Kubernetes version this helm is built against; both
# have schemas bundled in kubernetes-validate.
kube_versions=(1.30.0 1.35.0)
# CRDs the renderings may use; with these, helm template renders KEDA and ServiceMonitor objects.
api_versions=(--api-versions keda.sh/v1alpha1/ScaledObject --api-versions keda.sh/v1alpha1/TriggerAuthentication
    --api-versions monitoring.coreos.com/v1/ServiceMonitor)
crd_kinds='ScaledObject|TriggerAuthentication|ServiceMonitor'

say() { printf 'deploy-check: %s\n' "$*"; }
fail() { printf 'deploy-check: FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
failures=0

[ -x "$helm" ] || helm=$(command -v helm) || { echo "deploy-check: helm is missing: run make setup" >&2; exit 1; }
# The pinned Python tools `make setup` installs into .tools/venv (scripts/tool-versions).
python=$root/.tools/venv/bin/python
hadolint=${HADOLINT:-$root/.tools/venv/bin/hadolint}
[ -x "$hadolint" ] || { echo "deploy-check: hadolint is missing: run make setup" >&2; exit 1; }
command -v shellcheck >/dev/null || { echo "deploy-check: shellcheck is missing: run make setup" >&2; exit 1; }
"$python" -c 'import kubernetes_validate, yamllint, jsonschema' 2>/dev/null \
    || { echo "deploy-check: kubernetes-validate or yamllint is missing: run make setup" >&2; exit 1; }

out=$(mktemp -d /tmp/osp-deploy-check.XXXXXX)
trap 'rm -rf "$out"' EXIT

say "hadolint"
"$hadolint" "$deploy/Dockerfile" "$deploy/smoke/Containerfile" || fail "hadolint"

say "shellcheck"
shellcheck "$deploy"/*.sh "$root"/scripts/*.sh "$root"/.ci/run || fail "shellcheck"

say "helm $("$helm" version --template '{{.Version}}'): lint --strict and template"
value_sets=(defaults)
for file in "$deploy"/test/values/*.yaml; do value_sets+=("$(basename "$file" .yaml)"); done
for set in "${value_sets[@]}"; do
    values=()
    [ "$set" = defaults ] || values=(-f "$deploy/test/values/$set.yaml")
    lint=$("$helm" lint --strict "$chart" "${values[@]}" 2>&1) \
        || { printf '%s\n' "$lint"; fail "helm lint --strict ($set)"; continue; }
    for kube in "${kube_versions[@]}"; do
        rendering=$out/$set-$kube.yaml
        "$helm" template osp "$chart" --namespace osp --kube-version "$kube" "${values[@]}" "${api_versions[@]}" \
            >"$rendering" || { fail "helm template ($set, Kubernetes $kube)"; continue; }
        report=$("$python" -m kubernetes_validate --strict --kubernetes-version "$kube" "$rendering" 2>&1) \
            || { printf '%s\n' "$report"; fail "kubernetes-validate --strict ($set, Kubernetes $kube)"; continue; }
        # kubernetes-validate skips kinds it has no schema for, with a warning: only the CRD
        # kinds, which validate_crs.py checks, may be skipped.
        unexpected=$(printf '%s\n' "$report" | grep "Couldn't find schema" | grep -Ev "kind ($crd_kinds) " || true)
        [ -z "$unexpected" ] || { printf '%s\n' "$unexpected"; fail "kinds without a schema ($set, Kubernetes $kube)"; }
        say "$set on Kubernetes $kube: $(grep -c '^kind:' "$rendering") documents, kubernetes-validate --strict passed"
    done
done
# The defaults on a cluster without the CRDs: no KEDA or ServiceMonitor objects at all.
"$helm" template osp "$chart" --namespace osp --set metrics.serviceMonitor.enabled=true >"$out/plain-cluster.yaml"
! grep -Eq "^kind: ($crd_kinds)$" "$out/plain-cluster.yaml" || fail "a CRD object rendered for a cluster without its CRD"
"$python" -m kubernetes_validate --strict --quiet "$out/plain-cluster.yaml" || fail "kubernetes-validate (plain cluster)"

say "custom resources against deploy/test/cr_schemas.py"
"$python" "$deploy/test/validate_crs.py" "$out"/*.yaml || fail "CRD schema validation"

say "the chart's promises"
"$python" "$deploy/test/check_renderings.py" "$helm" "$out"/*-1.35.0.yaml || fail "check_renderings.py"

say "yamllint"
"$python" -m yamllint --strict -c "$deploy/yamllint.yaml" "$chart/Chart.yaml" "$chart/values.yaml" \
    "$deploy"/test/values/*.yaml "$deploy"/test/invalid/*.yaml "$out"/*.yaml || fail "yamllint"

say "what must fail"
for file in "$deploy"/test/invalid/*.yaml; do
    expect=$(sed -n '1s/^# expect: //p' "$file")
    [ -n "$expect" ] || { fail "$file has no '# expect: ' first line"; continue; }
    if output=$("$helm" lint --strict "$chart" -f "$file" 2>&1); then
        fail "helm lint --strict accepted $(basename "$file")"
    elif ! grep -qF -- "$expect" <<<"$output"; then
        printf '%s\n' "$output"
        fail "helm lint --strict rejected $(basename "$file") without saying: $expect"
    else
        say "$(basename "$file") fails helm lint --strict: $expect"
    fi
done
if output=$("$helm" template osp "$chart" --set worker.autoscaling.mode=keda 2>&1); then
    fail "keda mode rendered without a Temporal address for the scaler"
elif ! grep -q "needs the Temporal address for the scaler" <<<"$output"; then
    printf '%s\n' "$output"
    fail "keda mode without an address failed without saying so"
fi
# A misspelt security field must fail kubernetes-validate --strict (it would be dropped
# silently by the API server), and a misspelt ScaledObject field the CRD check.
sed 's/readOnlyRootFilesystem: true/readOnlyRootFileSystem: true/' "$out/defaults-1.35.0.yaml" >"$out/misspelt.yaml.bad"
if "$python" -m kubernetes_validate --strict --quiet --kubernetes-version 1.35.0 "$out/misspelt.yaml.bad" >/dev/null 2>&1; then
    fail "kubernetes-validate --strict accepted readOnlyRootFileSystem"
fi
sed 's/pollingInterval:/pollingIntervall:/' "$out/keda-1.35.0.yaml" >"$out/misspelt-keda.yaml.bad"
"$python" "$deploy/test/validate_crs.py" --expect-failure "$out/misspelt-keda.yaml.bad" >/dev/null \
    || fail "the CRD check accepted pollingIntervall"

if [ $failures -gt 0 ]; then
    say "$failures check(s) failed"
    exit 1
fi
say "passed"
