#!/usr/bin/env python3
"""Checks what the chart promises on rendered manifests (helm template output), offline.

For every rendering given:
- each OSP pod runs non-root with a read-only root filesystem, no capabilities, no privilege
  escalation and the RuntimeDefault seccomp profile; its probes use /healthz (startup,
  liveness) and /readyz (readiness) on the health port; terminationGracePeriodSeconds covers
  the preStop sleep plus OSP_SHUTDOWN_GRACE_SECONDS, the grace the program itself is given;
  it carries a config checksum; every volume it mounts exists;
- a Deployment that an HPA or a ScaledObject scales has no replicas of its own;
- PodDisruptionBudgets, metrics Services, HPAs and ScaledObjects point at existing pods;
- with Vault injection on, OSP_CONFIG names the file the agent renders, the ServiceAccount
  token is mounted for the agent, and the agent's template, rendered with made-up secrets
  (quotes, backslashes, a newline, non-ASCII) by Helm's own Go template engine standing in
  for Vault Agent's, gives a TOML file that parses back to exactly those values, whose keys
  are all known to the configuration loader (the keys in crates/osp-config/src/*.rs).

Usage: check_renderings.py HELM RENDERING.yaml...
"""

import json
import pathlib
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG_RS = ROOT / "crates/osp-config/src"
OSP_COMMANDS = {"/usr/local/bin/osp-worker", "/usr/local/bin/osp-bridge"}
VAULT = "vault.hashicorp.com/"

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def known_file_keys():
    """The TOML keys of the OSP_CONFIG file, as the configuration loader names them."""
    keys = set()
    for source in sorted(CONFIG_RS.glob("*.rs")):
        text = source.read_text()
        # Key::new("ENV", "file.key"), key(...), secret(...), or a struct with `file: "..."`.
        keys |= set(re.findall(r'(?:Key::new|key|secret)\(\s*"[A-Z0-9_]+",\s*"([a-z_.]+)"', text))
        keys |= set(re.findall(r'\bfile:\s*"([a-z_.]+)"', text))
    if not keys:
        raise SystemExit(f"found no configuration keys in {CONFIG_RS}")
    return keys


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_pod(where, pod_meta, pod, config_maps, is_job):
    annotations = pod_meta.get("annotations") or {}
    spec = pod
    sc = spec.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True or not sc.get("runAsUser"):
        problem(where, "pod securityContext must set runAsNonRoot and a non-zero runAsUser")
    if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem(where, "pod seccompProfile must be RuntimeDefault")
    mounts_ok = {v["name"] for v in spec.get("volumes") or []}
    for container in spec.get("containers") or []:
        cwhere = f"{where} container {container['name']}"
        csc = container.get("securityContext") or {}
        if csc.get("readOnlyRootFilesystem") is not True:
            problem(cwhere, "readOnlyRootFilesystem must be true")
        if csc.get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "allowPrivilegeEscalation must be false")
        if (csc.get("capabilities") or {}).get("drop") != ["ALL"]:
            problem(cwhere, "capabilities must drop ALL")
        if csc.get("privileged"):
            problem(cwhere, "must not be privileged")
        command = (container.get("command") or [None])[0]
        if command not in OSP_COMMANDS:
            problem(cwhere, f"command {command!r} is not an OSP program")
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in mounts_ok:
                problem(cwhere, f"mounts volume {mount['name']!r}, which the pod does not have")
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        for source in container.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref:
                if ref["name"] not in config_maps:
                    problem(cwhere, f"envFrom names ConfigMap {ref['name']!r}, not in the rendering")
                else:
                    env = {**config_maps[ref["name"]], **env}
        if annotations.get(VAULT + "agent-inject") == "true":
            files = [k[len(VAULT + "agent-inject-template-"):] for k in annotations if k.startswith(VAULT + "agent-inject-template-")]
            if env.get("OSP_CONFIG") not in {f"/vault/secrets/{f}" for f in files}:
                problem(cwhere, f"OSP_CONFIG {env.get('OSP_CONFIG')!r} is not a file the Vault agent renders {files}")
            if spec.get("automountServiceAccountToken") is not True:
                problem(where, "Vault Agent needs the ServiceAccount token mounted")
        if args_of(container) == ["migrate"]:
            continue  # the migration Job serves no endpoints
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        health_port = env.get("HEALTH_CHECK_PORT")
        if "http" not in ports or str(ports["http"]) != str(health_port):
            problem(cwhere, f"port http {ports.get('http')} is not HEALTH_CHECK_PORT {health_port}")
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (container.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") != "http":
                problem(cwhere, f"{probe} must GET {path} on port http, got {get}")
        grace = env.get("OSP_SHUTDOWN_GRACE_SECONDS")
        if grace is None:
            problem(cwhere, "OSP_SHUTDOWN_GRACE_SECONDS is not set")
            continue
        sleep = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
        total = spec.get("terminationGracePeriodSeconds")
        if total is None or total <= sleep + int(grace):
            problem(where, f"terminationGracePeriodSeconds {total} does not cover preStop {sleep}s + grace {grace}s")
    if not is_job and not re.fullmatch(r"[0-9a-f]{64}", annotations.get("checksum/config", "")):
        problem(where, "pod template has no checksum/config annotation")


def args_of(container):
    return container.get("args") or []


def check_rendering(path):
    docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    config_maps = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind.get("ConfigMap", [])}
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in by_kind.get("HorizontalPodAutoscaler", []) + by_kind.get("ScaledObject", [])}
    for name in scaled:
        if name not in deployments:
            problem(path, f"an autoscaler targets Deployment {name!r}, not in the rendering")
    for name, d in deployments.items():
        where = f"{path}: Deployment {name}"
        if name in scaled and "replicas" in d["spec"]:
            problem(where, "sets replicas although an autoscaler scales it")
        if name not in scaled and "replicas" not in d["spec"]:
            problem(where, "has no replicas and no autoscaler")
        template = d["spec"]["template"]
        if not labels_match(d["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]):
            problem(where, "selector does not match its pod labels")
        check_pod(where, template["metadata"], template["spec"], config_maps, False)
    for job in by_kind.get("Job", []):
        template = job["spec"]["template"]
        check_pod(f"{path}: Job {job['metadata']['name']}", template["metadata"], template["spec"], config_maps, True)
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for kind, selector in (("PodDisruptionBudget", lambda d: d["spec"]["selector"]["matchLabels"]), ("Service", lambda d: d["spec"]["selector"])):
        for d in by_kind.get(kind, []):
            if not any(labels_match(selector(d), labels) for labels in pods):
                problem(f"{path}: {kind} {d['metadata']['name']}", "selects no pod of the rendering")
    for d in by_kind.get("PodDisruptionBudget", []):
        if "maxUnavailable" not in d["spec"]:
            problem(f"{path}: PodDisruptionBudget {d['metadata']['name']}", "has no maxUnavailable")
    return docs


def vault_templates(docs):
    """(where, file name, template) of every Vault Agent template in a rendering, deduplicated."""
    seen = {}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        annotations = doc["spec"]["template"]["metadata"].get("annotations") or {}
        for key, value in annotations.items():
            if key.startswith(VAULT + "agent-inject-template-"):
                seen.setdefault(value, (f"{doc['kind']} {doc['metadata']['name']}", key[len(VAULT + "agent-inject-template-"):]))
    return [(where, name, template) for template, (where, name) in seen.items()]


# Values no file should mangle: TOML and JSON metacharacters, a newline, non-ASCII.
TRICKY = 'p@ss "quoted" \\back\\slash # not a comment\nline two <&> ünïcødé'


def check_vault_template(helm, where, template, keys):
    """Renders a Vault Agent template with Helm standing in for Vault Agent, and checks the TOML."""
    paths = re.findall(r'with secret "([^"]+)"', template)
    fields = re.findall(r'with index \.Data(?:\.data)? "([^"]+)"', template)
    if not paths:
        problem(where, "the Vault template reads no secret")
        return
    # Every field gets a distinct tricky value, except the last, left out of Vault: its key
    # must be left out of the file too.
    missing = fields[-1] if fields else None
    data = {f: f"{f}: {TRICKY}" for f in fields if f != missing}
    kv2 = ".Data.data" in template
    secrets = {p: {"Data": {"data": data} if kv2 else data} for p in paths}
    emulated = re.sub(r'with secret ("[^"]+")', r"with index $.secrets \1", template).replace("toJSON", "toJson")
    with tempfile.TemporaryDirectory() as chart:
        chart = pathlib.Path(chart)
        (chart / "templates").mkdir()
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: vault-agent-stand-in\nversion: 0.0.0\n")
        (chart / "templates/out.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rendered\ndata:\n"
            '  osp.toml: {{ tpl .Values.template (dict "secrets" .Values.secrets "Template" .Template) | toJson }}\n'
        )
        (chart / "values.json").write_text(json.dumps({"template": emulated, "secrets": secrets}))
        result = subprocess.run(
            [helm, "template", "x", str(chart), "-f", str(chart / "values.json")],
            capture_output=True, text=True,
        )
    if result.returncode != 0:
        problem(where, f"the Vault template does not render: {result.stderr.strip()}")
        return
    rendered = yaml.safe_load(result.stdout)["data"]["osp.toml"]
    try:
        parsed = tomllib.loads(rendered)
    except tomllib.TOMLDecodeError as error:
        problem(where, f"the Vault template renders invalid TOML ({error}):\n{rendered}")
        return

    def flatten(table, prefix=""):
        for key, value in table.items():
            if isinstance(value, dict):
                yield from flatten(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    got = dict(flatten(parsed))
    wanted = {}
    for field, key in re.findall(r'with index \.Data(?:\.data)? "([^"]+)" \}\}\n([a-z_.]+) = ', template):
        if field != missing:
            wanted[key] = data[field]
    for key in got:
        if key not in keys:
            problem(where, f"the Vault template writes {key}, a key the configuration loader does not know")
    if got != wanted:
        problem(where, f"the rendered file does not hold the secrets as given: got {got}, wanted {wanted}")
    else:
        print(f"PASS {where}: Vault template renders {len(got)} keys as TOML, one missing field left out")


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    helm, renderings = argv[0], argv[1:]
    keys = known_file_keys()
    for path in renderings:
        before = len(problems)
        docs = check_rendering(path)
        for where, name, template in vault_templates(docs):
            check_vault_template(helm, f"{path}: {where} ({name})", template, keys)
        if len(problems) == before:
            print(f"PASS {path}: {len(docs)} documents keep the chart's promises")
    for line in problems:
        print(f"FAIL {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
