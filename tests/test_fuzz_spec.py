"""Fuzzing the two pure entry points every QwenDeployment goes through: validate() and plan().

Three families of generated specs (hypothesis strategies, also imported by e2e/test_reliability.py):
  valid_specs()      valid-looking specs: catalog models, GPU products (names and aliases), TP 1/2/4/8 that divide
                     the model's heads, matching quantization, speculative sections, serving values incl. extremes,
                     Kubernetes-legal names, labels, tolerations and env. Many pass; some fail the fit check.
  invalid_specs()    a valid-looking spec with one mutation that must make it invalid: a wrong type, a negative
                     number, an unknown field, an absurd tensor-parallel size, junk extraArgs, a secret in env.
  arbitrary JSON     any JSON value as the spec, and valid-looking specs with one subtree replaced by junk.
Properties: validate() and plan() never raise; an invalid spec has a fatal problem with a reason and a message;
an accepted spec renders a StatefulSet (or, while its compile cache bakes, a bake Job) with GPU limit =
tensor x pipeline, no secret in its args, and a status that parses as QwenDeploymentStatus; a resync of the same
observation writes nothing; secret values from the spec never reach status, events or rendered objects.

Deterministic by default (stable CI); QWEN_FUZZ_RANDOM=1 draws fresh examples, QWEN_FUZZ_SCALE=N runs N times
as many. Counts and runtimes are recorded in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import string
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from qwen_operator.api import models as m
from qwen_operator.api.models import QwenDeploymentStatus
from qwen_operator.domain.catalog_data import CATALOG
from qwen_operator.domain.gpus import GPU_PRODUCTS
from qwen_operator.domain.validation import validate
from qwen_operator.domain.vllm_args import MANAGED_ENV, MANAGED_FLAGS, REMOVED_FLAGS, SECRET_FLAGS, flag_table
from qwen_operator.manifests.cache import ANNOTATION_BAKED
from qwen_operator.manifests.plan import ClusterView, plan

NOW = "2026-11-23T20:00:00Z"
LATER = "2026-11-23T20:05:00Z"
GPU = "nvidia.com/gpu"
SCALE = max(1, int(os.environ.get("QWEN_FUZZ_SCALE", "1")))
RANDOM = os.environ.get("QWEN_FUZZ_RANDOM") == "1"


def fuzz_settings(n: int) -> settings:
    # No explain phase: it re-runs a failing example hundreds of times and adds little to a shrunk example.
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- building blocks ---------------------------------------------------------------------------------------------

TARGETS = [c for c in CATALOG if not c.family.endswith("-draft")]
DRAFT_HEADS = [c for c in CATALOG if c.family.endswith("-draft")]
PRODUCT_NAMES = sorted({n for g in GPU_PRODUCTS for n in (g.product, *g.aliases)})
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "CREDENTIAL")
_SECRETISH = re.compile("|".join(SECRET_WORDS), re.I)
# Environment variables the operator itself sets in some pods, beyond MANAGED_ENV.
OPERATOR_SET_ENV = frozenset({"HF_HUB_OFFLINE", "VLLM_FORCE_AOT_LOAD", "QWEN_CACHE_KEY", "QWEN_CACHE_FACTORS"})

_TABLE = flag_table()
_FORBIDDEN_FLAGS = MANAGED_FLAGS | SECRET_FLAGS | set(REMOVED_FLAGS)
SAFE_FLAGS = sorted(f for f in _TABLE.flags if f not in _FORBIDDEN_FLAGS)


def _tp_ok(card: Any, tp: int) -> bool:
    kv = card.num_kv_heads
    return card.num_attention_heads % tp == 0 and ((tp <= kv and kv % tp == 0) or (tp > kv and tp % kv == 0))


_LOWER_DIGITS = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def _name(head: str, body: str, strip: str) -> str:
    return (head + body).rstrip(strip)


# Kubernetes names and label parts, built from characters rather than regexes (much cheaper to generate).
dns_label = st.builds(
    _name, st.sampled_from(string.ascii_lowercase), st.text(_LOWER_DIGITS + "-", max_size=14), st.just("-")
)
label_value = st.one_of(
    st.just(""), st.builds(_name, st.sampled_from(_ALNUM), st.text(_ALNUM + "_.-", max_size=14), st.just("_.-"))
)
label_key = st.builds(
    lambda prefix, name: prefix + name,
    st.sampled_from(["", "example.com/", "node.kubernetes.io/", "team.acme.io/"]),
    st.builds(_name, st.sampled_from(_LOWER_DIGITS), st.text(_LOWER_DIGITS + "_.-", max_size=14), st.just("_.-")),
)
safe_env_name = st.builds(
    lambda h, b: h + b,
    st.sampled_from(string.ascii_uppercase + "_"),
    st.text(string.ascii_uppercase + string.digits + "_", max_size=15),
).filter(lambda n: not _SECRETISH.search(n) and n not in MANAGED_ENV and n not in OPERATOR_SET_ENV)
# A value that looks like a credential; unique enough to be searched for in everything the operator writes.
secret_value = st.builds(
    lambda s: "sk-fuzz-" + s, st.text(string.ascii_letters + string.digits, min_size=12, max_size=24)
)
cpu = st.sampled_from(["1", "8", "96", "500m", "0.5", "250m", "192"])
memory = st.sampled_from(["1Gi", "64Gi", "512Mi", "2Ti", "100G", "750Mi", "1.5Gi"])


def _flag_arg(flag: str, value: str) -> str:
    return f"{flag}={value}" if flag in _TABLE.takes_value else flag


extra_args = st.lists(
    st.tuples(st.sampled_from(SAFE_FLAGS), st.sampled_from(["1", "auto", "x", "0.5", "a,b"])),
    unique_by=lambda t: t[0],
    max_size=4,
).map(lambda fv: [_flag_arg(f, v) for f, v in fv])

tolerations = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"key": label_key, "operator": st.just("Exists")},
            optional={"effect": st.sampled_from(["NoSchedule", "PreferNoSchedule"])},
        ),
        st.fixed_dictionaries(
            {"key": label_key, "operator": st.just("Equal"), "value": label_value},
            optional={"effect": st.sampled_from(["NoSchedule", "PreferNoSchedule"])},
        ),
        st.fixed_dictionaries(
            {"key": label_key, "operator": st.just("Exists"), "effect": st.just("NoExecute")},
            optional={"tolerationSeconds": st.integers(0, 10**6)},
        ),
    ),
    max_size=3,
)


def _speculative_strategy(card: Any, tp: int) -> st.SearchStrategy[dict[str, Any]]:
    """Speculative sections that are legal for this target: mtp only with MTP heads, draft heads and draft models
    of the target's vocabulary, draft TP 1 or the target's."""
    heads = [d.name for d in DRAFT_HEADS if d.vocab_size == card.vocab_size]
    drafts = [c.name for c in TARGETS if c.vocab_size == card.vocab_size]
    k = {"numSpeculativeTokens": st.integers(1, 16)}
    dtp = {**k, "draftTensorParallelSize": st.sampled_from(sorted({1, tp}))}
    options = [
        st.tuples(st.integers(1, 64), st.integers(1, 64)).flatmap(
            lambda lh: st.fixed_dictionaries(
                {"method": st.just("ngram")},
                optional={**k, "promptLookupMin": st.just(min(lh)), "promptLookupMax": st.just(max(lh))},
            )
        ),
        st.fixed_dictionaries({"method": st.just("draft_model"), "draftModel": st.sampled_from(drafts)}, optional=dtp),
    ]
    if card.mtp_layers > 0:
        options.append(st.fixed_dictionaries({"method": st.just("mtp")}, optional=k))
    if heads:
        options.append(
            st.fixed_dictionaries(
                {"method": st.sampled_from(["eagle3", "eagle"]), "draftModel": st.sampled_from(heads)}, optional=dtp
            )
        )
    return st.one_of(*options)


def _quantizations(card: Any) -> list[str]:
    return {"awq": ["none", "awq", "awq_marlin"], "gptq": ["none", "gptq", "gptq_marlin"], "fp8": ["none", "fp8"]}.get(
        card.checkpoint_quantization or "", ["none", "fp8"]
    )


# (card, tensor) pairs whose TP divides the attention heads and fits the KV heads, each with the strategies that
# depend on the model; built once (building strategies inside a draw is what makes generation slow).
_PER_MODEL = [
    (
        card,
        tp,
        _speculative_strategy(card, tp),
        st.sampled_from(_quantizations(card)),
        st.one_of(st.sampled_from([16, 2048, 8192, card.max_context]), st.integers(16, card.max_context)),
    )
    for card in TARGETS
    for tp in (1, 2, 4, 8)
    if _tp_ok(card, tp)
]

# Optional parts of a spec, each present when its bit of one drawn mask is set (one draw instead of one boolean
# per field; shrinking the mask towards 0 shrinks the spec towards the minimal one).
_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "pipeline": st.sampled_from([1, 2, 4]),
    "dtype": st.sampled_from(["auto", "bfloat16", "float16"]),
    "revision": st.sampled_from(["main", "v1.0", "0123456789abcdef0123456789abcdef01234567"]),
    "servedModelName": st.sampled_from(["qwen", "my-model:latest", "org/name.v2"]),
    "source": st.one_of(
        st.just({"type": "hf"}),
        st.builds(lambda n: {"tokenSecretRef": {"name": n}}, dns_label),
        st.builds(
            lambda n, k: {"tokenSecretRef": {"name": n, "key": k}},
            dns_label,
            st.sampled_from(["token", "hf_token", "HF.key"]),
        ),
        st.builds(lambda n: {"type": "pvc", "pvcName": n}, dns_label),
        st.builds(
            lambda n, path: {"type": "pvc", "pvcName": n, "pvcPath": path},
            dns_label,
            st.sampled_from(["Qwen/Qwen3-8B", "/weights/q", "a b/c"]),
        ),
    ),
    "speculative": st.none(),  # drawn from the model's own strategy
    "maxModelLen": st.none(),  # idem
    "maxNumSeqs": st.one_of(st.sampled_from([1, 4096]), st.integers(1, 4096)),
    "maxNumBatchedTokens": st.one_of(st.sampled_from([16, 10_000_000]), st.integers(16, 10_000_000)),
    "kvCacheDtype": st.sampled_from(["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]),
    "enablePrefixCaching": st.booleans(),
    "enableChunkedPrefill": st.booleans(),
    "gpuMemoryUtilization": st.one_of(
        st.sampled_from([0.98, 0.5, 0.1000001]), st.floats(0.1, 0.98, exclude_min=True, allow_nan=False)
    ),
    "blockSize": st.sampled_from([16, 32, 64, 128]),
    "cudagraphCaptureSizes": st.lists(st.integers(1, 8192), unique=True, min_size=1, max_size=8),
    "env": st.lists(
        st.fixed_dictionaries({"name": safe_env_name}, optional={"value": st.text(max_size=40)}),
        unique_by=lambda e: e["name"],
        max_size=4,
    ),
    "extraArgs": extra_args,
    "product": st.sampled_from(PRODUCT_NAMES),
    "nodeSelector": st.dictionaries(label_key, label_value, max_size=3),
    "tolerations": tolerations,
    "image": st.sampled_from(
        ["vllm/vllm-openai:v0.32.0", "registry.example.com/vllm:custom", "vllm/vllm-openai@sha256:" + "a" * 64]
    ),
    "resources": st.fixed_dictionaries({}, optional={"cpu": cpu, "memory": memory, "shmSize": memory}),
    "replicas": st.one_of(st.sampled_from([0, 1, 1000]), st.integers(0, 1000)),
    "startupTimeoutSeconds": st.one_of(st.sampled_from([60, 14400]), st.integers(60, 14400)),
    "compileCache": st.fixed_dictionaries(
        {},
        optional={
            "enabled": st.booleans(),
            "strict": st.booleans(),
            "onBakeFailure": st.sampled_from(["ServeCold", "Wait"]),
            "bakeTimeoutSeconds": st.integers(60, 86400),
            "allowCrossDevice": st.booleans(),
            "storage": st.fixed_dictionaries(
                {},
                optional={
                    "size": st.sampled_from(["1Gi", "20Gi", "1Ti", "500M"]),
                    "storageClassName": dns_label,
                    "accessMode": st.sampled_from(["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"]),
                },
            ),
        },
    ),
    "autoscaling": st.tuples(st.integers(0, 1000), st.integers(0, 1000)).flatmap(
        lambda ab: st.fixed_dictionaries(
            {"enabled": st.booleans(), "minReplicas": st.just(min(ab)), "maxReplicas": st.just(max(max(ab), 1))},
            optional={
                "warmPool": st.integers(0, 100),
                "intervalSeconds": st.integers(1, 600),
                "targetQueuePerReplica": st.floats(0.01, 10000, allow_nan=False),
            },
        )
    ),
}
_BITS = {name: 1 << i for i, name in enumerate(_OPTIONAL)}
# Bytes rather than an integer: hypothesis draws small integers far more often than large ones, which would make
# the high bits (the later sections) rare; bytes come out evenly.
_MASK = st.binary(min_size=(len(_OPTIONAL) + 7) // 8, max_size=(len(_OPTIONAL) + 7) // 8)
_SERVING = (
    "maxModelLen",
    "maxNumSeqs",
    "maxNumBatchedTokens",
    "kvCacheDtype",
    "enablePrefixCaching",
    "enableChunkedPrefill",
    "gpuMemoryUtilization",
    "blockSize",
    "cudagraphCaptureSizes",
    "env",
    "extraArgs",
)
_PLACES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dtype", ()),
    ("revision", ("model",)),
    ("servedModelName", ("model",)),
    ("source", ("model",)),
    ("image", ()),
    ("resources", ()),
    ("replicas", ()),
    ("startupTimeoutSeconds", ()),
    ("compileCache", ()),
    ("autoscaling", ()),
    ("product", ("gpu",)),
    ("nodeSelector", ("gpu",)),
    ("tolerations", ("gpu",)),
    *((n, ("serving",)) for n in _SERVING),
)


@st.composite
def valid_specs(draw: Any) -> dict[str, Any]:
    """A valid-looking QwenDeployment spec (camelCase, as written in YAML). Every Kubernetes-facing value
    (names, labels, tolerations, env, quantities) is legal for the apiserver."""
    card, tp, spec_dec, quant, max_len = draw(st.sampled_from(_PER_MODEL))
    mask = int.from_bytes(draw(_MASK), "big")

    def opt(name: str) -> bool:
        return bool(mask & _BITS[name])

    spec: dict[str, Any] = {"model": {"name": card.name}}
    if tp != 1 or opt("pipeline"):
        spec["parallelism"] = {"tensor": tp}
        if opt("pipeline"):
            spec["parallelism"]["pipeline"] = draw(_OPTIONAL["pipeline"])
    q = draw(quant)
    if q != "none" or opt("dtype"):
        spec["quantization"] = q
    for name, where in _PLACES:
        if not opt(name):
            continue
        value = draw({"maxModelLen": max_len}.get(name, _OPTIONAL[name]))
        cur = spec
        for w in where:
            cur = cur.setdefault(w, {})
        cur[name] = value
    if opt("speculative"):
        spec["speculativeDecoding"] = draw(spec_dec)
    return spec


# ---- invalid specs: one mutation that must be refused, with the reason(s) it may be refused for ----------------

_INT_PATHS = [
    ("replicas",),
    ("startupTimeoutSeconds",),
    ("parallelism", "tensor"),
    ("parallelism", "pipeline"),
    ("serving", "maxModelLen"),
    ("serving", "maxNumSeqs"),
    ("serving", "maxNumBatchedTokens"),
    ("compileCache", "bakeTimeoutSeconds"),
    ("autoscaling", "minReplicas"),
    ("autoscaling", "maxReplicas"),
    ("autoscaling", "warmPool"),
    ("autoscaling", "intervalSeconds"),
]
_FLOAT_PATHS = [("serving", "gpuMemoryUtilization"), ("autoscaling", "targetQueuePerReplica")]
_ANY_PATHS = (
    _INT_PATHS
    + _FLOAT_PATHS
    + [
        ("model",),
        ("model", "name"),
        ("model", "source"),
        ("model", "source", "type"),
        ("quantization",),
        ("dtype",),
        ("serving",),
        ("serving", "env"),
        ("serving", "extraArgs"),
        ("serving", "kvCacheDtype"),
        ("serving", "enablePrefixCaching"),
        ("serving", "blockSize"),
        ("serving", "cudagraphCaptureSizes"),
        ("gpu",),
        ("gpu", "product"),
        ("gpu", "nodeSelector"),
        ("gpu", "tolerations"),
        ("image",),
        ("resources",),
        ("resources", "memory"),
        ("compileCache",),
        ("compileCache", "enabled"),
        ("autoscaling",),
        ("autoscaling", "enabled"),
    ]
)
_OBJECTS = {
    (): m.QwenDeploymentSpec,
    ("model",): m.ModelSpec,
    ("serving",): m.Serving,
    ("gpu",): m.GPU,
    ("parallelism",): m.Parallelism,
    ("compileCache",): m.CompileCache,
    ("autoscaling",): m.Autoscaling,
    ("resources",): m.Resources,
    ("model", "source"): m.ModelSource,
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)),
    max_leaves=25,
)


def set_path(spec: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    cur = out
    for p in path[:-1]:
        if not isinstance(cur.get(p), dict):
            cur[p] = {}
        cur = cur[p]
    cur[path[-1]] = value
    return out


def _known_keys(model: type) -> set[str]:
    keys: set[str] = set()
    for fname, f in model.model_fields.items():  # type: ignore[attr-defined]
        keys |= {fname, f.alias or fname}
    return keys


INVALID_KINDS = ("wrong-type", "negative", "unknown-field", "absurd-tp", "junk-extra-args", "secret-env", "secret-arg")


Broken = tuple[dict[str, Any], str, set[str], list[str]]  # (spec, what was broken, refusal reasons, secrets)


def _wrong_type(draw: Any, spec: dict[str, Any], kind: str) -> Broken:
    path = draw(st.sampled_from(_ANY_PATHS))
    # A list holding an object fits no field of the spec (scalars, lists of scalars, maps, objects); a
    # non-empty map fits none but objects and maps.
    wrong = [st.builds(lambda v: [{"junk": v}], json_values)]
    if path not in _OBJECTS and path[-1] != "nodeSelector":
        wrong.append(st.dictionaries(st.text(min_size=1, max_size=8), json_values, min_size=1))
    value = draw(st.one_of(*wrong))
    return set_path(spec, path, value), f"{kind} at {'.'.join(path)}", {"InvalidSpec"}, []


def _negative(draw: Any, spec: dict[str, Any], kind: str) -> Broken:
    path = draw(st.sampled_from(_INT_PATHS + _FLOAT_PATHS))
    value: Any = (
        draw(st.integers(-(10**9), -1))
        if path in _INT_PATHS
        else draw(st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=True))
    )
    return set_path(spec, path, value), f"{kind} at {'.'.join(path)}", {"InvalidSpec"}, []


_LOOKALIKE_KEYS = ["namespace", "Namespace", "metadata", "kind", "tensorParallel", "maxmodellen", "hfToken"]


def _unknown_field(draw: Any, spec: dict[str, Any], kind: str) -> Broken:
    where = draw(st.sampled_from(sorted(_OBJECTS)))
    key = draw(
        st.one_of(
            st.sampled_from([*_LOOKALIKE_KEYS, "nodeName", "privileged"]),
            st.text(min_size=1, max_size=12),
        ).filter(lambda k: k not in _known_keys(_OBJECTS[where]))
    )
    out = json.loads(json.dumps(spec))
    cur = out
    for p in where:
        cur = cur.setdefault(p, {})
    cur[key] = draw(json_values)
    return out, f"{kind} {key!r} in {'.'.join(where) or 'spec'}", {"InvalidSpec"}, []


def _absurd_tp(draw: Any, spec: dict[str, Any], kind: str) -> Broken:
    card = next(c for c in TARGETS if c.name == spec["model"]["name"])
    tp = draw(
        st.one_of(
            st.integers(-5, 0),
            st.integers(65, 10**6),
            st.integers(3, 64).filter(lambda t: card.num_attention_heads % t != 0),
        )
    )
    spec = set_path(spec, ("parallelism", "tensor"), tp)
    return spec, f"{kind} {tp}", {"InvalidSpec", "TensorParallelInvalid"}, []


def _junk_extra_args(draw: Any, spec: dict[str, Any], kind: str) -> Broken:
    valued = sorted(f for f in _TABLE.takes_value if f not in _FORBIDDEN_FLAGS)
    junk = draw(
        st.one_of(
            st.text(max_size=20).filter(lambda s: not s.startswith("--") or len(s) < 3),
            st.builds(
                lambda h, b: "--" + h + b,
                st.sampled_from(string.ascii_lowercase),
                st.text(_LOWER_DIGITS + "-", max_size=20),
            ).filter(lambda f: f not in _TABLE.flags),
            st.sampled_from(sorted(MANAGED_FLAGS | set(REMOVED_FLAGS))),
            st.sampled_from(valued),  # a valued flag without its value
        )
    )
    args = list((spec.get("serving") or {}).get("extraArgs") or [])
    args.insert(draw(st.integers(0, len(args))), junk)
    reasons = {"InvalidSpec", "InvalidVLLMArgs"}
    return set_path(spec, ("serving", "extraArgs"), args), f"{kind} {junk!r}", reasons, []


def _secret_env(draw: Any, spec: dict[str, Any], kind: str) -> Broken:
    word = draw(st.sampled_from(SECRET_WORDS))
    name = draw(
        st.builds(
            lambda a, b: a + word + b,
            st.sampled_from(["", "MY_", "HF_", "DB_", "x"]),
            st.sampled_from(["", "_FILE", "S", "_1"]),
        )
    )
    name = draw(st.sampled_from([name, name.lower(), "HF_TOKEN"]))
    val = draw(secret_value)
    env = list((spec.get("serving") or {}).get("env") or [])
    env.insert(draw(st.integers(0, len(env))), {"name": name, "value": val})
    return set_path(spec, ("serving", "env"), env), f"{kind} {name}", {"SecretInSpec", "InvalidEnv"}, [val]


def _secret_arg(draw: Any, spec: dict[str, Any], kind: str) -> Broken:
    """A secret put on the command line, in the ways people write it."""
    flag = draw(st.sampled_from(sorted(SECRET_FLAGS)))
    val = draw(secret_value)
    form = draw(st.sampled_from(["eq", "split", "space"]))
    new = {"eq": [f"{flag}={val}"], "split": [flag, val], "space": [f"{flag} {val}"]}[form]
    args = list((spec.get("serving") or {}).get("extraArgs") or []) + new
    return set_path(spec, ("serving", "extraArgs"), args), f"{kind} {form}", {"InvalidSpec", "InvalidVLLMArgs"}, [val]


_BREAKERS = {
    "wrong-type": _wrong_type,
    "negative": _negative,
    "unknown-field": _unknown_field,
    "absurd-tp": _absurd_tp,
    "junk-extra-args": _junk_extra_args,
    "secret-env": _secret_env,
    "secret-arg": _secret_arg,
}


@st.composite
def invalid_specs(draw: Any, kinds: tuple[str, ...] = INVALID_KINDS) -> Broken:
    """(spec, what was broken, reasons it may be refused for, secret values it carries)."""
    spec = draw(valid_specs())
    kind = draw(st.sampled_from(kinds))
    return _BREAKERS[kind](draw, spec, kind)


@st.composite
def junk_subtree_specs(draw: Any) -> dict[str, Any]:
    """A valid-looking spec with one subtree (any depth) replaced by arbitrary JSON."""
    spec = draw(valid_specs())
    paths: list[tuple[str, ...]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append(path + (k,))
                walk(v, path + (k,))

    walk(spec, ())
    path = draw(st.sampled_from(paths))
    return set_path(spec, path, draw(json_values))


# ---- running plan() and checking what it produced ----------------------------------------------------------------


def body_of(
    spec: Any, name: str = "fuzz", namespace: str = "ns", status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "qwenops.dev/v1alpha1",
        "kind": "QwenDeployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "0b5e4c1a-2f1e-4d9c-9a57-6f2d1c3b4a59",
            "generation": 3,
        },
        "spec": spec,
        "status": status or {},
    }


def cluster_view(baked: bool, nodes: int = 2, gpus: int = 8) -> ClusterView:
    def lookup(obj_name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        if not baked:
            return None, None
        pvc = {
            "metadata": {
                "name": obj_name,
                "annotations": {ANNOTATION_BAKED: "true"},
                "ownerReferences": [{"uid": "0b5e4c1a-2f1e-4d9c-9a57-6f2d1c3b4a59"}],
            }
        }
        return pvc, None

    return ClusterView(
        statefulset=None, services={}, pods=[], nodes_with_product=nodes, max_gpus_on_a_node=gpus, cache_lookup=lookup
    )


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = obj["spec"]["template"]["spec"]
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def check_plan(spec: Any, baked: bool, secrets: tuple[str, ...] | list[str] = ()) -> Any:
    """Run validate() and plan(); check the properties that hold for every input. Returns (report, plan)."""
    rep = validate(spec)  # must not raise, whatever spec is
    assert isinstance(rep.problems, list)
    for p in rep.problems:
        assert isinstance(p.reason, str) and p.reason.strip(), p
        assert isinstance(p.message, str) and p.message.strip(), p
    if not rep.ok:
        assert rep.errors, "an invalid spec must carry a fatal problem"
        reason, message = rep.summary()
        assert reason.strip() and message.strip()
    p = plan(body_of(spec), cluster_view(baked), NOW)  # must not raise either
    assert p.status is not None, "a first reconcile always writes status"
    QwenDeploymentStatus.model_validate(p.status)
    json.dumps(p.status)  # the status must be JSON (it is merge-patched as such)
    by_type = {c["type"]: c for c in p.status["conditions"]}
    assert by_type["Validated"]["status"] == ("True" if rep.ok else "False")
    for ev in p.events:
        assert ev.type in ("Normal", "Warning") and ev.reason.strip() and ev.message.strip()
    if not rep.ok:
        assert p.apply == [] and p.ensure_shared == [], "nothing is created for an invalid spec"
        assert p.status["phase"] == "Invalid"
    for secret in secrets:
        for where, what in (
            ("status", p.status),
            ("events", [e.__dict__ for e in p.events]),
            ("objects", p.apply + p.ensure_shared),
        ):
            assert secret not in json.dumps(what), f"secret value leaked into {where}"
    return rep, p


def check_rendered(spec: dict[str, Any], rep: Any, p: Any, baked: bool) -> None:
    """An accepted spec: what it renders, with GPU limits = tensor x pipeline and no secret on the command line."""
    sp = rep.spec
    gpus = sp.parallelism.tensor * sp.parallelism.pipeline
    stss = [o for o in p.apply if o["kind"] == "StatefulSet"]
    jobs = [o for o in p.ensure_shared if o["kind"] == "Job"]
    services = [o for o in p.apply if o["kind"] == "Service"]
    assert len(services) == 2
    held = sp.compile_cache.enabled and not baked
    if held:
        assert stss == [] and len(jobs) == 1, "a compile cache bakes before the first rollout"
        workloads = jobs
    else:
        assert len(stss) == 1 and jobs == []
        workloads = stss
        assert stss[0]["spec"]["replicas"] == p.status["desiredReplicas"]
    for w in workloads:
        main = w["spec"]["template"]["spec"]["containers"][0]
        assert main["resources"]["limits"][GPU] == str(gpus)
        assert main["resources"]["requests"][GPU] == str(gpus)
        # Serving pods run `vllm serve ARGS`; the bake Job runs a script that passes the same ARGS to vllm serve.
        assert main["args"] == rep.args
        if w["kind"] == "StatefulSet":
            assert main["command"] == ["vllm", "serve"]
        for a in rep.args:
            assert a.split("=", 1)[0] not in SECRET_FLAGS, f"secret flag on the command line: {a}"
        for c in _containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            for e in c.get("env", []):
                if e["name"] == "HF_TOKEN":
                    assert "value" not in e and set(e["valueFrom"]) == {"secretKeyRef"}
        assert w["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    tok = sp.model.source.token_secret_ref
    if tok is not None:
        env = {e["name"]: e for e in workloads[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["HF_TOKEN"] == {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": tok.name, "key": tok.key}},
        }
    assert p.status["vllmCommand"].startswith("vllm serve ")
    # A resync with the same observation computes the same status: nothing to write, no event.
    again = plan(body_of(spec, status=p.status), cluster_view(baked), LATER)
    assert again.status is None and again.events == []


# ---- properties --------------------------------------------------------------------------------------------------


@fuzz_settings(1000)
@given(spec=valid_specs(), baked=st.booleans())
def test_valid_looking_specs_validate_and_render(spec: dict[str, Any], baked: bool) -> None:
    rep, p = check_plan(spec, baked)
    if rep.ok:
        check_rendered(spec, rep, p, baked)
    else:
        # Valid-looking specs fail only on domain knowledge (fit, speculative rules), never on parsing.
        assert rep.spec is not None and "InvalidSpec" not in {e.reason for e in rep.errors}, rep.errors


@fuzz_settings(1000)
@given(case=invalid_specs(), baked=st.booleans())
def test_invalid_specs_are_refused_with_a_reason(case: tuple[Any, str, set[str], list[str]], baked: bool) -> None:
    spec, what, reasons, _secrets = case
    rep, _p = check_plan(spec, baked)
    assert not rep.ok, f"{what} was accepted"
    got = {e.reason for e in rep.errors}
    assert got & reasons, f"{what}: refused for {got}, expected one of {reasons}"


@fuzz_settings(800)
@given(spec=json_values, baked=st.booleans())
def test_arbitrary_json_never_crashes(spec: Any, baked: bool) -> None:
    rep, _ = check_plan(spec, baked)
    if not isinstance(spec, dict) or "model" not in spec:
        assert not rep.ok


@fuzz_settings(600)
@given(spec=junk_subtree_specs(), baked=st.booleans())
def test_junk_subtrees_never_crash(spec: dict[str, Any], baked: bool) -> None:
    rep, p = check_plan(spec, baked)
    if rep.ok:
        check_rendered(spec, rep, p, baked)


@fuzz_settings(300)
@given(
    model=st.builds(
        lambda org, h, b: f"{org}/{h}{b}", dns_label, st.sampled_from(_ALNUM), st.text(_ALNUM + "._-", max_size=20)
    ).filter(lambda n: n.lower() not in {c.name.lower() for c in CATALOG}),
    tp=st.integers(1, 64),
    baked=st.booleans(),
)
def test_unknown_models_are_flagged_not_guessed(model: str, tp: int, baked: bool) -> None:
    spec = {"model": {"name": model}, "parallelism": {"tensor": tp}}
    rep, p = check_plan(spec, baked)
    assert "FitUnknown" in {w.reason for w in rep.warnings}
    assert p.status["fit"]["known"] is False
    if rep.ok:
        check_rendered(spec, rep, p, baked)


@fuzz_settings(300)
@given(case=invalid_specs(kinds=("secret-env", "secret-arg")), baked=st.booleans())
def test_secret_values_never_leave_the_spec(case: tuple[Any, str, set[str], list[str]], baked: bool) -> None:
    """A secret written into the spec (env literal, --api-key and friends in extraArgs, in any of the ways people
    write them) is refused, and its value is not copied into status, events or objects: those are readable by
    far more people than the spec."""
    spec, what, _reasons, secrets = case
    rep, _ = check_plan(spec, baked, secrets=secrets)
    assert not rep.ok, f"{what} was accepted"


@fuzz_settings(300)
@given(
    spec=valid_specs(),
    extra_env=st.lists(st.one_of(safe_env_name, st.sampled_from(sorted(OPERATOR_SET_ENV))), min_size=1, max_size=3),
    baked=st.booleans(),
)
def test_accepted_specs_render_unique_list_keys(spec: dict[str, Any], extra_env: list[str], baked: bool) -> None:
    """Server-side apply refuses a container whose env (or volumes, mounts, ports) repeats a key
    ("duplicate entries for key"); an accepted spec must never render one, or the operator can never apply it."""
    env = list((spec.get("serving") or {}).get("env") or []) + [{"name": n, "value": "1"} for n in extra_env]
    spec = set_path(spec, ("serving", "env"), env)
    rep, p = check_plan(spec, baked)
    if not rep.ok:
        return
    for obj in p.apply + p.ensure_shared:
        if obj["kind"] not in ("StatefulSet", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for key, items in (("volumes", pod.get("volumes", [])), ("containers", _containers(obj))):
            names = [i["name"] for i in items]
            assert len(names) == len(set(names)), f"{obj['kind']} {key} repeat a name: {names}"
        for c in _containers(obj):
            for key in ("env", "volumeMounts"):
                names = [i["name"] if key == "env" else i["mountPath"] for i in c.get(key, [])]
                dup = sorted({n for n in names if names.count(n) > 1})
                assert not dup, f"{obj['kind']} container {c['name']} {key} repeats {dup}"
