from pathlib import Path

import yaml

from qwen_operator.api import crd

ROOT = Path(__file__).resolve().parents[1]


def test_committed_crd_matches_models():
    committed = (ROOT / "crds" / "qwendeployments.yaml").read_text()
    assert committed == crd.render(), "crds/qwendeployments.yaml is stale: run `make crds`"


def _walk(node, path="$"):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def test_schema_is_structural():
    schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        if node.get("additionalProperties") is False:
            raise AssertionError(f"additionalProperties: false at {path}")


def test_spec_fields_have_descriptions():
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    missing = [k for k, v in spec["properties"].items() if not v.get("description")]
    assert not missing
    sd = spec["properties"]["speculativeDecoding"]
    assert "method" in sd["required"] and sd["properties"]["method"]["enum"]
    assert sd["x-kubernetes-validations"]


def test_scale_subresource_and_printer_columns():
    v = crd.crd()["spec"]["versions"][0]
    assert v["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    names = [c["name"] for c in v["additionalPrinterColumns"]]
    assert names[:5] == ["Model", "Quant", "TP", "Ready", "Status"]


def test_yaml_round_trips():
    assert yaml.safe_load(crd.render())["kind"] == "CustomResourceDefinition"


def test_committed_api_docs_match():
    from qwen_operator.api import docs

    assert (ROOT / "docs" / "api.md").read_text() == docs.render(), "docs/api.md is stale: run `make docs`"
