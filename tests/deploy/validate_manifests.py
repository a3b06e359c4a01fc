"""Validates Kubernetes manifests offline, one line per document on stdout.

Built-in kinds are checked by kubernetes-validate (PyPI), which bundles the Kubernetes
OpenAPI schemas, in strict mode (unknown fields are errors). Prometheus Operator kinds
(ServiceMonitor, PrometheusRule, ...) are checked by validate_crds.mjs, with the CRD schemas
bundled in the npm package @kubernetes-models/prometheus-operator.

Usage: python validate_manifests.py K8S_VERSION NODE_MODULES_DIR FILE...
Prints `ok FILE KIND NAME via VALIDATOR` or `invalid FILE KIND NAME: WHY`; exits 1 if any
document is invalid or unknown.
"""

import json
import os
import subprocess
import sys

import kubernetes_validate
import yaml

CRD_GROUP = "monitoring.coreos.com/"
HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    version, node_modules, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    failed = False
    for path in files:
        with open(path, encoding="utf-8") as handle:
            documents = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
        if not documents:
            print(f"invalid {path} - -: no Kubernetes object in the file")
            failed = True
        for doc in documents:
            kind = doc.get("kind", "-")
            name = (doc.get("metadata") or {}).get("name", "-")
            if str(doc.get("apiVersion", "")).startswith(CRD_GROUP):
                why = validate_crd(doc, node_modules)
                via = "@kubernetes-models/prometheus-operator"
            else:
                why = validate_builtin(doc, version)
                via = f"kubernetes-validate {version} strict"
            if why is None:
                print(f"ok {path} {kind} {name} via {via}")
            else:
                print(f"invalid {path} {kind} {name}: {why}")
                failed = True
    sys.exit(1 if failed else 0)


def validate_builtin(doc, version):
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.utils.ValidationError as err:
        where = ".".join(str(part) for part in err.path) or "(top)"
        return f"{where}: {err.message}"
    except (
        kubernetes_validate.utils.SchemaNotFoundError,
        kubernetes_validate.utils.VersionNotSupportedError,
    ) as err:
        return err.message
    return None


def validate_crd(doc, node_modules):
    env = dict(os.environ, NODE_PATH=node_modules)
    result = subprocess.run(
        ["node", os.path.join(HERE, "validate_crds.mjs")],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(node_modules),
        timeout=60,
        check=False,
    )
    if result.returncode == 0:
        return None
    return (result.stdout + result.stderr).strip() or f"node exited {result.returncode}"


if __name__ == "__main__":
    main()
