"""Per-replica service model: Qwen3-8B (bf16) served by vLLM on one NVIDIA H100 SXM5 80 GB.

Derived from first principles (roofline) with stated efficiencies; every constant is documented in
bench/autoscaling/README.md together with its source.  Nothing here was fitted to the traces.

A vLLM engine step (continuous batching with chunked prefill, vLLM V1 scheduler) processes one token
for every decoding sequence plus up to ``max_num_batched_tokens - n_decode`` prompt tokens.  Two step-time
shapes are modelled (``ServiceModel.additive``):

* roofline (the original model, ``additive=False``): one ``max()`` over the whole mixed batch,

      T = t_overhead + max(bytes_moved / (HBM bandwidth * eta_mem), flops / (peak bf16 * eta_flops))

  where bytes_moved = weight bytes + KV bytes read by decode attention, and flops = 2 * linear params per
  processed token (+ lm_head per generated token) + attention flops.  Prefill compute hides under the decoders'
  KV reads, which vLLM's kernels, run one after another, do not do: this shape is 20-40 % too fast (issue 17).
* additive (``additive=True``, the calibrated variants): the kernels of one step add up,

      T = t_overhead + t_seq * n_seqs + max(W / bw_w, linear flops / fl_gemm) + KV read / bw_kv
          + prefill attention flops / fl_attn

  the linear layers are one GEMM per layer that reads the weights once for all the step's tokens (hence the
  ``max`` inside it); decode attention reads every decoder's KV; prefill attention is a kernel of its own.
  Every coefficient and its source are in ``CALIBRATED`` below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelSpec:
    """Architecture numbers from the model's config.json / model card."""

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    total_params: float  # including embeddings and lm_head
    non_embedding_params: float
    bytes_per_param: float = 2.0  # bf16
    max_model_len: int = 32768

    @property
    def weight_bytes(self) -> float:
        return self.total_params * self.bytes_per_param

    @property
    def kv_bytes_per_token(self) -> float:
        # K and V, every layer, every KV head, head_dim elements of 2 bytes (bf16 KV cache)
        return 2.0 * self.n_layers * self.n_kv_heads * self.head_dim * 2.0

    @property
    def attn_width(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def lm_head_params(self) -> float:
        return float(self.vocab * self.hidden)


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet numbers."""

    name: str
    hbm_bytes: float
    hbm_bandwidth: float  # bytes/s
    bf16_dense_flops: float  # FLOP/s, dense (no sparsity)


# Qwen3-8B: 36 layers, hidden 4096, 32 query heads / 8 KV heads, head_dim 128, vocab 151,936,
# 8.2 B parameters of which 6.95 B non-embedding, embeddings not tied; 32,768 native context,
# 131,072 with YaRN (Qwen3-8B model card and config.json).
QWEN3_8B = ModelSpec(
    name="Qwen/Qwen3-8B (bf16)",
    n_layers=36,
    hidden=4096,
    n_heads=32,
    n_kv_heads=8,
    head_dim=128,
    vocab=151_936,
    total_params=8.19e9,
    non_embedding_params=6.95e9,
    max_model_len=131_072,  # served with YaRN factor 4 so that Mooncake's long prompts are admissible
)

# Llama-3-8B (and Llama-3.1-8B, the same architecture): 32 layers, hidden 4096, 32 query / 8 KV heads, head_dim 128,
# vocab 128,256, 8.03 B parameters, embeddings not tied (meta-llama/Meta-Llama-3-8B config.json and model card,
# https://huggingface.co/meta-llama/Meta-Llama-3-8B).  The published vLLM measurements the calibrated variants are
# fitted to were taken with this model; the fleet is then simulated with Qwen3-8B's own sizes.
LLAMA3_8B = ModelSpec(
    name="meta-llama/Meta-Llama-3-8B (bf16)",
    n_layers=32,
    hidden=4096,
    n_heads=32,
    n_kv_heads=8,
    head_dim=128,
    vocab=128_256,
    total_params=8.03e9,
    non_embedding_params=8.03e9 - 2 * 128_256 * 4096,
    max_model_len=8192,
)

# NVIDIA H100 SXM5 80 GB datasheet: 3.35 TB/s HBM3, 989 TFLOPS dense BF16.
H100_SXM = GpuSpec(name="NVIDIA H100 SXM5 80GB", hbm_bytes=80 * 2**30, hbm_bandwidth=3.35e12, bf16_dense_flops=989e12)


@dataclass(frozen=True)
class ColdStart:
    """Time from pod creation to Ready, split as in the llm-d GKE snapshot guide's Qwen3-32B breakdown."""

    name: str
    imports_s: float
    weights_s: float
    engine_init_s: float

    @property
    def total_s(self) -> float:
        return self.imports_s + self.weights_s + self.engine_init_s


def cold_start_for(model: ModelSpec, scenario: str) -> ColdStart:
    """Scale the published Qwen3-32B / H100 breakdown (imports 73 s, weights 130 s for 61 GiB, engine
    init 73 s incl. compile and 9 s CUDA-graph capture) to ``model``.

    * imports: model-independent, 73 s.
    * weights: proportional to the checkpoint size (130 s / 61 GiB = 2.13 s/GiB).
    * engine init: 73 s with a cold compile cache.  A baked torch.compile cache saves the compile
      share: vLLM PR 32191 measured compile 30.7 s -> 15.0 s for Qwen3-32B (-15.7 s).
    * 'unbaked-a10g': the founding notes' Qwen3.5-4B on A10G measured 697 s -> 156 s with a baked
      cache, i.e. 541 s of compile/JIT work that a bake removes; we add that penalty to the baked
      figure as the pessimistic no-cache case.
    """
    weights_gib = model.weight_bytes / 2**30
    weights_s = 130.0 / 61.0 * weights_gib
    if scenario == "baked":
        return ColdStart("baked compile cache", 73.0, weights_s, 73.0 - 15.7)
    if scenario == "unbaked":
        return ColdStart("no baked cache (H100, PR 32191 compile time)", 73.0, weights_s, 73.0)
    if scenario == "unbaked-a10g":
        return ColdStart("no baked cache (A10G-like compile penalty, +541 s)", 73.0, weights_s, 73.0 - 15.7 + 541.0)
    if scenario == "none":
        return ColdStart("instant (oracle)", 0.0, 0.0, 0.0)
    if scenario in LEVERS:
        return lever_cold_start(model, scenario)
    raise ValueError(f"unknown cold-start scenario {scenario!r}")


# The product's cold-start levers (issue 19 item 4), each phase from a published figure:
# - download at pod start, no weight cache: KServe measured a Llama-3-70B (~131 GiB bf16) service start of 15-20 min
#   without and ~1 min with a local model cache (https://github.com/kserve/kserve/issues/3869): ~16.5 min for
#   131 GiB, 7.6 s/GiB. (Cross-check: llm-d measured 110 s -> 52 s per pod with a hostPath weight cache,
#   https://github.com/llm-d/llm-d-autoscaling/issues/1433, model size not given.)
# - reading local weights with vLLM's default loader: 130 s / 61 GiB = 2.13 s/GiB (the breakdown above).
# - reading with the Run:ai Model Streamer: NVIDIA Dynamo loaded 554 GiB in 5.3 min with it (76 min without),
#   1.74 GiB/s = 0.57 s/GiB (as cited in issue 19; the 76 min includes their storage, not only vLLM's loader).
# - compile cache: the baked engine init above (PR 32191's -15.7 s of compile).
DOWNLOAD_S_PER_GIB = 16.5 * 60 / 131.0
LOCAL_READ_S_PER_GIB = 130.0 / 61.0
STREAMER_READ_S_PER_GIB = 5.3 * 60 / 554.0
LEVERS = {
    "lever-none": "no cache: download at start, compile",
    "lever-compile": "compile cache",
    "lever-compile-weights": "compile cache + weight cache",
    "lever-compile-weights-streamer": "compile cache + weight cache + runai_streamer",
}


def lever_cold_start(model: ModelSpec, scenario: str) -> ColdStart:
    """A lever scenario's cold start; weights_s is download (when uncached) plus the read."""
    gib = model.weight_bytes / 2**30
    download = 0.0 if "weights" in scenario else DOWNLOAD_S_PER_GIB * gib
    read = (STREAMER_READ_S_PER_GIB if scenario.endswith("streamer") else LOCAL_READ_S_PER_GIB) * gib
    engine = 73.0 - 15.7 if "compile" in scenario else 73.0
    return ColdStart(LEVERS[scenario], 73.0, download + read, engine)


@dataclass(frozen=True)
class ServiceModel:
    """Everything the simulator needs to time one vLLM replica."""

    model: ModelSpec = QWEN3_8B
    gpu: GpuSpec = H100_SXM
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    gpu_memory_utilization: float = 0.90
    activation_reserve_bytes: float = 3.0e9  # activations for an 8192-token step + CUDA graphs (assumed)
    eta_mem: float = 0.80  # achieved fraction of HBM bandwidth in decode (assumed)
    eta_flops: float = 0.50  # achieved fraction of dense bf16 peak in prefill GEMMs (assumed MFU)
    step_overhead_s: float = 0.0015  # scheduler + sampling + launch per step with CUDA graphs (assumed)
    # additive step (the calibrated variants; see CALIBRATED for the values and their sources)
    additive: bool = False
    per_seq_s: float = 0.0  # per sequence in the step: input preparation, sampling, output processing
    eta_weights: float = 0.80  # achieved fraction of HBM bandwidth reading the weights
    eta_kv: float = 0.80  # achieved fraction of HBM bandwidth reading decoders' KV (paged attention)
    eta_gemm: float = 0.50  # achieved fraction of dense bf16 peak in the linear layers when compute-bound
    eta_attn: float = 0.50  # achieved fraction of dense bf16 peak in prefill attention (FlashAttention)
    variant: str = "roofline"
    # derived (filled in __post_init__)
    kv_capacity_tokens: int = field(default=0)
    f_dec: float = field(default=0.0)
    attn_flops_per_ctx_token: float = field(default=0.0)

    def __post_init__(self) -> None:
        usable = (
            self.gpu.hbm_bytes * self.gpu_memory_utilization - self.model.weight_bytes - self.activation_reserve_bytes
        )
        object.__setattr__(self, "kv_capacity_tokens", int(usable // self.model.kv_bytes_per_token))
        # a generated token: every linear layer + lm_head, 2 FLOPs per MAC
        object.__setattr__(self, "f_dec", 2.0 * (self.model.non_embedding_params + self.model.lm_head_params))
        # attention of one new token against one cached token: QK^T and AV, 2 FLOPs per MAC
        object.__setattr__(self, "attn_flops_per_ctx_token", 4.0 * self.model.n_layers * self.model.attn_width)
        # constants of step_time, precomputed for the simulator's inner loop
        bw = self.gpu.hbm_bandwidth * self.eta_mem
        fl = self.gpu.bf16_dense_flops * self.eta_flops
        object.__setattr__(
            self,
            "_k",
            (
                self.step_overhead_s,
                self.model.weight_bytes / bw,
                self.model.kv_bytes_per_token / bw,
                self.f_dec / fl,
                self.attn_flops_per_ctx_token / fl,
                1.0 / fl,
                2.0 * self.model.non_embedding_params,
                0.5 * self.attn_flops_per_ctx_token,
            ),
        )
        hbm, peak = self.gpu.hbm_bandwidth, self.gpu.bf16_dense_flops
        object.__setattr__(
            self,
            "_a",
            (
                self.step_overhead_s,
                self.per_seq_s,
                self.model.weight_bytes / (hbm * self.eta_weights),
                self.f_dec / (peak * self.eta_gemm),
                2.0 * self.model.non_embedding_params / (peak * self.eta_gemm),
                self.model.kv_bytes_per_token / (hbm * self.eta_kv),
                0.5 * self.attn_flops_per_ctx_token / (peak * self.eta_attn),
            ),
        )

    def additive_step(self, n_dec: int, ctx: float, p: float, prompt: float) -> float:
        """Additive step time: ``n_dec`` decoders holding ``ctx`` tokens of context, ``p`` prompt tokens of a
        prompt ``prompt`` tokens long (its attention cost per token grows with the prompt)."""
        ovh, t_seq, w_t, fdec_g, lin2_g, kv_t, attn_t = self._a  # type: ignore[attr-defined]
        gemm = n_dec * fdec_g + p * lin2_g
        n = n_dec + (1 if p > 0.0 else 0)
        return ovh + t_seq * n + (w_t if w_t > gemm else gemm) + kv_t * ctx + p * attn_t * prompt

    @property
    def bw(self) -> float:
        return self.gpu.hbm_bandwidth * self.eta_mem

    @property
    def flops(self) -> float:
        return self.gpu.bf16_dense_flops * self.eta_flops

    def prefill_flops_per_token(self, prompt_len: int) -> float:
        """Average FLOPs per prompt token of a prompt of ``prompt_len`` tokens: linear layers plus
        causal attention (sum over positions x of 4*L*d*x = 2*L*d*n^2, i.e. 2*L*d*n per token)."""
        return 2.0 * self.model.non_embedding_params + 0.5 * self.attn_flops_per_ctx_token * prompt_len

    def step_time(self, n_dec: int, ctx_dec: float, p_tokens: float, f_pf: float) -> float:
        """Duration of one engine step with ``n_dec`` decoding sequences holding ``ctx_dec`` tokens of
        context in total, and ``p_tokens`` prompt tokens (average cost ``f_pf`` FLOPs each)."""
        if self.additive:
            prompt = (f_pf - 2.0 * self.model.non_embedding_params) / (0.5 * self.attn_flops_per_ctx_token)
            return self.additive_step(n_dec, ctx_dec, p_tokens, prompt)
        ovh, w_bw, kv_bw, fdec_f, attn_f, inv_f, _, _ = self._k  # type: ignore[attr-defined]
        mem = w_bw + kv_bw * ctx_dec
        comp = n_dec * fdec_f + p_tokens * f_pf * inv_f + attn_f * ctx_dec
        return ovh + (mem if mem > comp else comp)

    def isolated_ttft(self, prompt_len: int) -> float:
        """TTFT of a prompt alone on an idle replica (chunks of max_num_batched_tokens)."""
        f = self.prefill_flops_per_token(prompt_len)
        t = 0.0
        left = prompt_len
        while left > 0:
            c = min(left, self.max_num_batched_tokens)
            t += self.step_time(0, 0.0, c, f)
            left -= c
        return t

    def describe(self) -> dict[str, object]:
        m = self.model
        return {
            "model": m.name,
            "gpu": self.gpu.name,
            "weight_GB": round(m.weight_bytes / 1e9, 2),
            "kv_bytes_per_token": m.kv_bytes_per_token,
            "kv_capacity_tokens": self.kv_capacity_tokens,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "max_model_len": m.max_model_len,
            "variant": self.variant,
            "step": "additive" if self.additive else "roofline max()",
            **(
                {
                    "per_seq_s": self.per_seq_s,
                    "eta_weights": self.eta_weights,
                    "eta_kv": self.eta_kv,
                    "eta_gemm": self.eta_gemm,
                    "eta_attn": self.eta_attn,
                }
                if self.additive
                else {"eta_mem": self.eta_mem, "eta_flops": self.eta_flops}
            ),
            "step_overhead_s": self.step_overhead_s,
            "decode_step_ms_batch1": round(1e3 * self.step_time(1, 1000, 0, 0), 2),
            "decode_step_ms_batch64_ctx1400": round(1e3 * self.step_time(64, 64 * 1400, 0, 0), 2),
            "decode_step_ms_batch256_ctx1400": round(1e3 * self.step_time(256, 256 * 1400, 0, 0), 2),
            "prefill_tokens_per_s_1k_prompt": round(1000 / self.isolated_ttft(1000)),
            "isolated_ttft_s": {n: round(self.isolated_ttft(n), 3) for n in (1000, 8000, 32000, 100000)},
        }


# The calibrated replicas: the additive step with coefficients from published measurements.  The checks that they
# reproduce the published figures (within +-15 %) are bench/autoscaling/calibration.py and tests/test_calibration.py.
# Two engines were measured: vLLM v0.6.0 (V0 engine, run with multi-step scheduling, which spreads the CPU work of
# one scheduling pass over 10 steps) and the V1 engine.  No one set of coefficients reproduces both blogs within
# +-15 % (the best single fit misses by 18 %): the V1 blog's ShareGPT latencies need more CPU time per step and per
# sequence than the v0.6.0 TPOTs allow.  So each engine gets its own variant; both are reported.
CALIBRATED_V060 = ServiceModel(
    additive=True,
    variant="calibrated-v060",
    # Weights read: "execution time on the GPU is as low as ~5ms" for Llama-8B on an H100 (vLLM V1 blog,
    # https://blog.vllm.ai/2025/01/27/v1-alpha-release.html): 16.06 GB of Llama-3-8B weights in 5.0 ms is 0.96 of
    # the datasheet's 3.35 TB/s.
    eta_weights=0.96,
    # Prefill attention: FlashAttention-3 reaches "up to 740 TFLOPs/s (75% utilization)" in FP16 on an H100
    # (https://arxiv.org/abs/2407.08608, the kernel vLLM V1 uses); chunked, causal prefill runs below that peak:
    # 0.5, assumed (no published vLLM figure isolates it; it matters only for long prompts).
    eta_attn=0.50,
    # Fitted (calibration.py --fit calibrated-v060) to the v0.6.0 blog's figures
    # (https://blog.vllm.ai/2024/09/05/perf-update.html), Llama-3-8B on one H100:
    # * fixed overhead per step: TPOT ~8 ms at 2 QPS (a handful of sequences), less the 5.0 ms weights read;
    # * per-sequence cost and KV-read efficiency: TPOT ~12 ms at 16 QPS and 31 req/s decode-heavy (256-sequence
    #   batches with ~600 tokens of context each);
    # * GEMM efficiency when compute-bound: 59 req/s prefill-heavy (~27k prompt tokens/s).
    step_overhead_s=0.0020,
    per_seq_s=0.000016,
    eta_kv=0.72,
    eta_gemm=0.45,
)

# The V1 engine: the same kernels ("the kernels used for V0 and V1 are almost identical", V1 blog), so the same
# efficiencies; the CPU-side costs (fixed overhead per step, cost per sequence) refitted
# (calibration.py --fit calibrated-v1) to the V1 blog's ShareGPT mean latencies at 20 / 40 / 50 QPS.
CALIBRATED_V1 = dataclasses.replace(
    CALIBRATED_V060, variant="calibrated-v1", step_overhead_s=0.00374, per_seq_s=0.0000312
)

# Every verdict is reported under each of these; "meets the SLO" is claimed only where all of them agree.
SERVICE_VARIANTS: dict[str, ServiceModel] = {
    "calibrated-v1": CALIBRATED_V1,
    "calibrated-v060": CALIBRATED_V060,
    "roofline": ServiceModel(),  # the original model (one max() per step), 20-40 % too fast
}


# --- The vLLM CPU build with the tiny random Qwen3 (issue 17 item 2; bench/autoscaling/validate_cpu.py) ---------------
# e2e/vllm/make_tiny_qwen3.py's default shape: 2 layers, hidden 128, 2 query heads / 1 KV head of head_dim 64,
# intermediate 256, vocab 512, tied embeddings.  Non-embedding parameters per layer: q 128x128, k and v 128x64,
# o 128x128, q/k norms 2x64, MLP 3x128x256, two RMS norms 2x128 = 147,840; two layers plus the final norm = 295,808;
# with the 65,536 embedding parameters 361,344 (model.safetensors holds 722,688 bytes of bf16 tensors).
TINY_QWEN3 = ModelSpec(
    name="tiny random Qwen3 (e2e/vllm/make_tiny_qwen3.py, bf16)",
    n_layers=2,
    hidden=128,
    n_heads=2,
    n_kv_heads=1,
    head_dim=64,
    vocab=512,
    total_params=361_344,
    non_embedding_params=295_808,
    max_model_len=512,
)


@dataclass(frozen=True)
class FittedServiceModel(ServiceModel):
    """The additive step with its coefficients given in seconds, fitted to a measured engine instead of derived from
    a datasheet's peak rates and efficiencies (a CPU has no meaningful "HBM bandwidth" for a 0.7 MB model):

        T = step_overhead_s + per_seq_s * n_seqs + per_token_s * (r_dec * n_dec + p) + kv_token_s * ctx
            + attn_token2_s * p * prompt

    r_dec = (non-embedding + lm_head params) / non-embedding params: a decoded token also runs the lm_head.  The
    weights read is folded into the overhead (w_t = 0).  ``kv_capacity`` overrides the derived KV capacity (tokens)."""

    per_token_s: float = 0.0
    kv_token_s: float = 0.0
    attn_token2_s: float = 0.0
    kv_capacity: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        r_dec = self.f_dec / (2.0 * self.model.non_embedding_params)
        a = (self.step_overhead_s, self.per_seq_s, 0.0, self.per_token_s * r_dec, self.per_token_s)
        object.__setattr__(self, "_a", (*a, self.kv_token_s, self.attn_token2_s))
        if self.kv_capacity > 0:
            object.__setattr__(self, "kv_capacity_tokens", self.kv_capacity)
