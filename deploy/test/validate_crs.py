#!/usr/bin/env python3
"""Validates the custom resources in rendered manifests against vendored CRD schemas, offline.

kubernetes-validate knows only built-in kinds; it warns and skips KEDA's ScaledObject and
TriggerAuthentication and the Prometheus Operator's ServiceMonitor. This checks those
documents against the openAPIV3Schema of the CRDs in crds/ (see crds/README.md), made
strict the way kubernetes-validate --strict is: an object schema that lists its properties
accepts no others, so a misspelt field fails instead of being pruned by the API server.

Usage: validate_crs.py [--expect-failure] RENDERING.yaml...
Prints one line per custom resource; exits 1 when one is invalid (or, with
--expect-failure, when none is).
"""

import copy
import pathlib
import sys

import jsonschema
import yaml

CRD_DIR = pathlib.Path(__file__).resolve().parent / "crds"


def strict(schema):
    """Returns a copy of an OpenAPI v3 schema that rejects properties it does not list."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def load_crds():
    """Maps (apiVersion, kind) to a validator for every served version of every vendored CRD."""
    validators = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                # metadata is checked by the API server, not by the CRD's schema.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def main(argv):
    expect_failure = "--expect-failure" in argv
    files = [arg for arg in argv if arg != "--expect-failure"]
    if not files:
        print(__doc__.strip().splitlines()[-3], file=sys.stderr)
        return 2
    validators = load_crds()
    groups = {api_version.split("/")[0] for api_version, _ in validators}
    checked = failed = 0
    for file in files:
        for doc in yaml.safe_load_all(pathlib.Path(file).read_text()):
            if not doc:
                continue
            api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            if api_version.split("/")[0] not in groups:
                continue  # a built-in kind: kubernetes-validate's business
            name = f"{file}: {kind} {doc.get('metadata', {}).get('name', '?')}"
            validator = validators.get((api_version, kind))
            checked += 1
            if validator is None:
                print(f"FAIL {name}: no vendored schema for {api_version} {kind}")
                failed += 1
                continue
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            if errors:
                failed += 1
                for error in errors:
                    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                    print(f"FAIL {name}: {where}: {error.message}")
            else:
                print(f"PASS {name} ({api_version})")
    if expect_failure:
        if failed == 0:
            print("FAIL expected an invalid custom resource, found none")
            return 1
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
