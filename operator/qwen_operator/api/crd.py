"""Generate the QwenDeployment CustomResourceDefinition from the pydantic models.

Kubernetes wants a *structural* OpenAPI v3 schema: no $ref, no anyOf-with-null, no `additionalProperties: false`
beside `properties`, and the boolean form of exclusiveMinimum. This module turns pydantic's JSON Schema into that.
Run `python -m qwen_operator.api.crd > crds/qwendeployments.yaml` (make crds); tests/test_crd.py fails on drift.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml
from pydantic import BaseModel

from . import models as m

_DROP = {"title", "discriminator"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:  # JSON Schema in, JSON Schema out: any JSON value
    if isinstance(node, list):
        return [_structural(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        # A field's own description and default win over the referenced model's docstring.
        target.update({k: v for k, v in node.items() if k in ("description", "default")})
        node = target
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of {len(variants)} types structurally: {variants}")
        inner = _structural(variants[0], defs)
        inner.update({k: v for k, v in node.items() if k in ("description",)})
        if node.get("default") is not None:
            inner["default"] = node["default"]
        node = inner
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties":
            if value is False:
                continue  # unknown fields are pruned, and rejected by kubectl's strict field validation
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
                continue
            out[key] = _structural(value, defs)
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
            continue
        out[key] = _structural(value, defs)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string" if all(isinstance(e, str) for e in out["enum"]) else "integer"
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return schema


def _status_schema() -> dict[str, Any]:
    schema = openapi_schema(m.QwenDeploymentStatus)
    schema.pop("x-kubernetes-preserve-unknown-fields", None)
    props = schema["properties"]
    props["conditions"]["x-kubernetes-list-type"] = "map"
    props["conditions"]["x-kubernetes-list-map-keys"] = ["type"]
    props["phase"] = {"type": "string", "description": "One word for humans: Ready, Progressing, Degraded, Invalid."}
    props["ready"] = {"type": "string", "description": "Ready/desired replicas, for kubectl get."}
    # Kopf keeps its own bookkeeping in status when handlers return values; allow it.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def _default_empty_objects(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Sections with all-default fields get their defaults, so the apiserver fills in their defaults and
    `kubectl get -o yaml` (and the printer columns) show the values in force."""
    for fname, field in model.model_fields.items():
        alias = field.alias or fname
        prop = schema.get("properties", {}).get(alias)
        sub = field.annotation
        if prop is None or not isinstance(sub, type) or not issubclass(sub, BaseModel):
            continue
        _default_empty_objects(sub, prop)
        if field.default_factory is not None and "default" not in prop:
            # The full default (not {}): the apiserver checks CEL rules against the default as written.
            default = field.get_default(call_default_factory=True)
            prop["default"] = default.to_wire() if isinstance(default, m.WireModel) else default


def _printer_columns() -> list[dict[str, Any]]:
    """kubectl get columns (Reason only with -o wide)."""
    return [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
        {"name": "Quant", "type": "string", "jsonPath": ".spec.quantization"},
        {"name": "TP", "type": "integer", "jsonPath": ".spec.parallelism.tensor"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
        {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Reason",
            "type": "string",
            "priority": 1,
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def _name_rules() -> list[dict[str, str]]:
    return [
        # The client Service takes the deployment's name, and a Service named vllm makes Kubernetes inject
        # VLLM_PORT=tcp://..., which vLLM rejects.
        {
            "rule": "self.metadata.name != 'vllm'",
            "message": "a QwenDeployment may not be named vllm: its Service would inject VLLM_PORT, which vLLM rejects",
        },
        # Pods get the label controller-revision-hash=<name>-<10 chars>, at most 63 characters.
        {
            "rule": "size(self.metadata.name) <= 52 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
            "message": "the name must be a DNS label of at most 52 characters (no dots): the StatefulSet's pods and "
            "Services are named after it",
        },
    ]


def _version(spec_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": m.VERSION,
        "served": True,
        "storage": True,
        "subresources": {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        "additionalPrinterColumns": _printer_columns(),
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": "QwenDeployment serves a Qwen model on vLLM with fit checks, a baked compile cache and "
                "queue-depth autoscaling.",
                "required": ["spec"],
                "x-kubernetes-validations": _name_rules(),
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": spec_schema,
                    "status": _status_schema(),
                },
            }
        },
    }


def crd() -> dict[str, Any]:
    spec_schema = openapi_schema(m.QwenDeploymentSpec)
    _default_empty_objects(m.QwenDeploymentSpec, spec_schema)
    spec_schema.setdefault("description", m.QwenDeploymentSpec.__doc__)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{m.PLURAL}.{m.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "qwen-operator"},
        },
        "spec": {
            "group": m.GROUP,
            "names": {
                "kind": m.KIND,
                "listKind": f"{m.KIND}List",
                "plural": m.PLURAL,
                "singular": m.SINGULAR,
                "shortNames": list(m.SHORT_NAMES),
                "categories": ["all", "qwen"],
            },
            "scope": "Namespaced",
            "versions": [_version(spec_schema)],
        },
    }


def render() -> str:
    header = (
        "# Generated by `make crds` (python -m qwen_operator.api.crd) from operator/qwen_operator/api/models.py.\n"
        "# Do not edit by hand.\n"
    )
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render())
