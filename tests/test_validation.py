from qwen_operator.domain.validation import validate


def reasons(spec):
    return {p.reason for p in validate(spec).problems}


def test_valid_base(base_spec):
    rep = validate(base_spec)
    assert rep.ok, rep.problems
    assert rep.args[0] == "Qwen/Qwen3-8B"
    assert "--tensor-parallel-size" in rep.args


def test_unknown_model_is_fit_unknown_not_error(base_spec):
    base_spec["model"]["name"] = "someorg/mystery-7b"
    rep = validate(base_spec)
    assert rep.ok and "FitUnknown" in reasons(base_spec)


def test_overrides_enable_fit(base_spec):
    base_spec["model"] = {
        "name": "someorg/mystery-70b",
        "overrides": {
            "totalParamsB": 70,
            "numLayers": 80,
            "numKvHeads": 8,
            "numAttentionHeads": 64,
            "headDim": 128,
            "vocabSize": 128256,
            "maxContext": 8192,
        },
    }
    rep = validate(base_spec)
    assert "DoesNotFit" in {p.reason for p in rep.problems}


def test_tp_must_divide_heads(base_spec):
    base_spec["parallelism"] = {"tensor": 3}
    assert "TensorParallelInvalid" in reasons(base_spec)


def test_awq_needs_awq_checkpoint(base_spec):
    base_spec["quantization"] = "awq"
    assert "QuantizationMismatch" in reasons(base_spec)


def test_max_model_len_beyond_context(base_spec):
    base_spec["serving"] = {"maxModelLen": 10_000_000}
    assert "MaxModelLenTooLong" in reasons(base_spec)


def test_unknown_extra_arg_rejected(base_spec):
    base_spec["serving"] = {"extraArgs": ["--speculative-model=Qwen/Qwen3-0.6B"]}
    rep = validate(base_spec)
    assert not rep.ok and "speculativeDecoding" in rep.errors[0].message


def test_made_up_flag_rejected(base_spec):
    base_spec["serving"] = {"extraArgs": ["--no-such-flag-anywhere"]}
    assert "InvalidVLLMArgs" in reasons(base_spec)


def test_managed_flag_in_extra_args_rejected(base_spec):
    base_spec["serving"] = {"extraArgs": ["--max-model-len=4096"]}
    assert "InvalidVLLMArgs" in reasons(base_spec)


def test_secret_flag_rejected_and_not_echoed(base_spec):
    base_spec["serving"] = {"extraArgs": ["--api-key=sk-verysecret"]}
    rep = validate(base_spec)
    assert not rep.ok
    assert "sk-verysecret" not in " ".join(p.message for p in rep.problems)


def test_secretish_env_rejected(base_spec):
    base_spec["serving"] = {"env": [{"name": "MY_API_KEY", "value": "abc"}]}
    assert "SecretInSpec" in reasons(base_spec)


def test_bad_shape_is_a_problem_not_an_exception(base_spec):
    base_spec["parallelism"] = {"tensor": "lots"}
    rep = validate(base_spec)
    assert not rep.ok and rep.errors[0].reason == "InvalidSpec"


def test_unknown_field_rejected(base_spec):
    base_spec["serving"] = {"maxModelLenn": 4096}
    assert not validate(base_spec).ok


def test_token_only_as_secret_ref(base_spec):
    from qwen_operator.api.models import QwenDeploymentSpec
    from qwen_operator.domain.vllm_args import render_env

    base_spec["model"]["source"] = {"tokenSecretRef": {"name": "hf", "key": "token"}}
    env = render_env(QwenDeploymentSpec.model_validate(base_spec))
    tok = [e for e in env if e["name"] == "HF_TOKEN"]
    assert tok == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]


def test_cpu_standin_pods_get_one_unpinned_thread_per_standin_gpu(base_spec):
    from qwen_operator.api.models import QwenDeploymentSpec
    from qwen_operator.domain.vllm_args import render_env

    base_spec["model"] = {"name": "Qwen/Qwen3-0.6B"}
    base_spec["gpu"] = {"product": "QWEN-CPU-STANDIN"}
    base_spec["parallelism"] = {"tensor": 2}
    env = {e["name"]: e["value"] for e in render_env(QwenDeploymentSpec.model_validate(base_spec))}
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert int(env["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"]) > 60  # longer than the clients' idle keep-alive
    # a real GPU gets none of the CPU build's settings
    h100 = render_env(QwenDeploymentSpec.model_validate({**base_spec, "gpu": {"product": "NVIDIA-H100-80GB-HBM3"}}))
    assert not {e["name"] for e in h100} & {"VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS", "VLLM_CPU_KVCACHE_SPACE"}


def test_cpu_standin_containers_are_capped_at_their_cpu_request(base_spec):
    from qwen_operator.api.models import QwenDeploymentSpec
    from qwen_operator.manifests.workload import vllm_container

    base_spec["model"] = {"name": "Qwen/Qwen3-0.6B"}
    base_spec["gpu"] = {"product": "QWEN-CPU-STANDIN"}
    base_spec["resources"] = {"cpu": "600m", "memory": "3Gi"}
    res = vllm_container(QwenDeploymentSpec.model_validate(base_spec), [], [])["resources"]
    assert res["limits"]["cpu"] == res["requests"]["cpu"] == "600m"
    # on a real GPU the CPU stays uncapped (a CPU limit would only throttle the host side of a GPU replica)
    base_spec["gpu"] = {"product": "NVIDIA-H100-80GB-HBM3"}
    res = vllm_container(QwenDeploymentSpec.model_validate(base_spec), [], [])["resources"]
    assert "cpu" not in res["limits"] and res["requests"]["cpu"] == "600m"


def test_prometheus_queries_are_valid_promql_strings():
    from qwen_operator.adapters.prometheus import queries, selector

    sel = selector("e2e-test-ns-1", "my.model")
    assert sel == '{namespace="e2e-test-ns-1",pod=~"my\\\\.model-[0-9]+"}'
    assert "\\-" not in "".join(queries("a-b", "c-d").values())
