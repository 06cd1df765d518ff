#!/usr/bin/env python3
"""Validates the custom resources in rendered manifests against the project's own schemas.

kubernetes-validate knows only built-in kinds; it warns and skips KEDA's ScaledObject and
TriggerAuthentication and the Prometheus Operator's ServiceMonitor. This checks those
documents against the strict schemas in cr_schemas.py (written for this project from the
fields those projects document): an object accepts only the properties it lists, so a
misspelt field fails instead of being pruned by the API server.

Usage: validate_crs.py [--expect-failure] RENDERING.yaml...
Prints one line per custom resource; exits 1 when one is invalid (or, with
--expect-failure, when none is).
"""

import pathlib
import sys

import jsonschema
import yaml

from cr_schemas import SCHEMAS


def load_validators():
    """Maps (apiVersion, kind) to a validator."""
    return {key: jsonschema.Draft7Validator(schema) for key, schema in SCHEMAS.items()}


def main(argv):
    expect_failure = "--expect-failure" in argv
    files = [arg for arg in argv if arg != "--expect-failure"]
    if not files:
        print(__doc__.strip().splitlines()[-3], file=sys.stderr)
        return 2
    validators = load_validators()
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
                print(f"FAIL {name}: no schema for {api_version} {kind}")
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
