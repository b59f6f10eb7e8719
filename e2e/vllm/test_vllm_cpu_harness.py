"""Tests of e2e/vllm_local.py: the argv helpers always; the real parser when the vLLM venv exists."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import vllm_local as vl

REPO = Path(__file__).resolve().parents[2]
FLAGS = REPO / "operator" / "qwen_operator" / "domain" / "vllm_flags_0_32.json"


@pytest.mark.parametrize(
    "argv, model, rest",
    [
        (["vllm", "serve", "Qwen/Qwen3-8B", "--max-model-len", "8192"], "Qwen/Qwen3-8B", ["--max-model-len", "8192"]),
        (["serve", "Qwen/Qwen3-8B"], "Qwen/Qwen3-8B", []),
        (["Qwen/Qwen3-8B", "-tp", "2"], "Qwen/Qwen3-8B", ["-tp", "2"]),
        (["--model", "Qwen/Qwen3-8B", "-tp", "2"], "Qwen/Qwen3-8B", ["-tp", "2"]),
        (["-tp", "2", "--model=Qwen/Qwen3-8B"], "Qwen/Qwen3-8B", ["-tp", "2"]),
        (["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m"], "m", []),
        (["--max-model-len", "8192"], None, ["--max-model-len", "8192"]),
    ],
)
def test_split_model(argv, model, rest):
    assert vl.split_model(argv) == (model, rest)


def test_server_argv_moves_model_and_replaces_host_port():
    out = vl.server_argv(["vllm", "serve", "Qwen/Qwen3-8B", "--port", "8000", "--host=0.0.0.0", "-tp", "1"], 18000)
    assert out == ["--model", "Qwen/Qwen3-8B", "-tp", "1", "--host", "127.0.0.1", "--port", "18000"]


def test_server_argv_substitutes_model_and_keeps_served_name():
    out = vl.server_argv(["vllm", "serve", "Qwen/Qwen3-8B"], 1, model_dir="/m")
    assert out[:2] == ["--model", "/m"]
    assert out[2:4] == ["--served-model-name", "Qwen/Qwen3-8B"]
    out = vl.server_argv(["vllm", "serve", "Qwen/Qwen3-8B", "--served-model-name", "x"], 1, model_dir="/m")
    assert out.count("--served-model-name") == 1


def test_vllm_python_error_names_the_install_script(monkeypatch, tmp_path):
    monkeypatch.setenv("QWEN_VLLM_VENV", str(tmp_path / "nope"))
    with pytest.raises(vl.VLLMNotInstalled, match=r"install-vllm-cpu\.sh"):
        vl.vllm_python()


def test_flag_table_shape():
    doc = json.loads(FLAGS.read_text())
    assert doc["vllm_version"] == "0.32.0"
    flags = {f: o for o in doc["options"] for f in o["flags"]}
    assert flags["--tensor-parallel-size"]["takes_value"] is True
    assert flags["--tensor-parallel-size"]["short"] == ["-tp"]
    assert flags["--enable-prefix-caching"]["takes_value"] is False
    assert "fp8" in flags["--kv-cache-dtype"]["choices"]
    for removed in (
        "--speculative-model",
        "--num-speculative-tokens",
        "--use-v2-block-manager",
        "--disable-log-requests",
    ):
        assert removed not in flags


needs_vllm = pytest.mark.skipif(
    not vl.is_installed(), reason="vLLM CPU venv not installed (e2e/vllm/install-vllm-cpu.sh)"
)


@needs_vllm
def test_check_many_against_the_real_parser(tmp_path):
    model = vl.ensure_tiny_model()
    res = vl.check_many(
        [
            ["vllm", "serve", "Qwen/Qwen3-8B", "--max-model-len", "8192", "--max-num-seqs", "64"],
            ["vllm", "serve", "Qwen/Qwen3-8B", "--use-v2-block-manager"],
            ["vllm", "serve", "Qwen/Qwen3-8B", "--quantization", "gguf"],
            ["vllm", "serve", "Qwen/Qwen3-8B", "--speculative-config", '{"method": "ngram", "bogus": 1}'],
            ["vllm", "serve", "Qwen/Qwen3-8B", "--max-model-len", "131072"],
            (["vllm", "serve", "Qwen/Qwen3-8B"], {"VLLM_PORT": "tcp://10.0.0.1:8000"}),
        ],
        model_dir=model,
    )
    oks = [ok for ok, _ in res]
    assert oks == [True, False, False, False, False, False], res
    assert "unrecognized arguments: --use-v2-block-manager" in res[1][1]
    assert "gguf" in res[2][1]
    assert "bogus" in res[3][1]
    assert "max_model_len" in res[4][1]
    assert "VLLM_PORT" in res[5][1]
