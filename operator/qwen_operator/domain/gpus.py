"""NVIDIA GPU products as GPU feature discovery (GFD) labels them, with the facts the fit check needs.

memory_mib is what GFD puts in the nvidia.com/gpu.memory label (the memory the driver reports, a little less
than the marketing number). Sources: NVIDIA datasheets for memory size and architecture; GFD label values as
seen on cloud nodes (e.g. H100 SXM 81559 MiB, A10G 23028 MiB).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPUProduct:
    product: str  # nvidia.com/gpu.product label value
    memory_mib: int  # nvidia.com/gpu.memory label value
    architecture: str  # hopper, ada, ampere, ...
    compute_capability: tuple[int, int]
    aliases: tuple[str, ...] = ()
    # A CPU that a test cluster's node advertises as nvidia.com/gpu (e2e/cluster/real-node.sh): it runs the
    # vLLM CPU build, so fit numbers are about host memory, and no GPU kernel ever runs.
    cpu_standin: bool = False

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @property
    def native_fp8(self) -> bool:
        """FP8 tensor cores (SM 8.9+). Older GPUs run fp8 weights as weight-only (Marlin), slower but valid."""
        return self.compute_capability >= (8, 9)


GPU_PRODUCTS: tuple[GPUProduct, ...] = (
    GPUProduct("NVIDIA-H100-80GB-HBM3", 81559, "hopper", (9, 0), ("H100", "H100-80GB", "H100-SXM")),
    GPUProduct("NVIDIA-H100-PCIe", 81559, "hopper", (9, 0), ("H100-PCIE",)),
    GPUProduct("NVIDIA-H200", 143771, "hopper", (9, 0), ("H200",)),
    GPUProduct("NVIDIA-A100-SXM4-80GB", 81920, "ampere", (8, 0), ("A100", "A100-80GB")),
    GPUProduct("NVIDIA-A100-SXM4-40GB", 40960, "ampere", (8, 0), ("A100-40GB",)),
    GPUProduct("NVIDIA-L40S", 46068, "ada", (8, 9), ("L40S",)),
    GPUProduct("NVIDIA-L4", 23034, "ada", (8, 9), ("L4",)),
    GPUProduct("NVIDIA-A10G", 23028, "ampere", (8, 6), ("A10G",)),
    GPUProduct("NVIDIA-A40", 46068, "ampere", (8, 6), ("A40",)),
    # 4 GiB of host memory per "GPU": the budget the fit check applies to weights + KV cache on the stand-in.
    GPUProduct("QWEN-CPU-STANDIN", 4096, "cpu", (0, 0), ("CPU-STANDIN",), cpu_standin=True),
)

CPU_STANDIN_NOTE = (
    "a CPU standing in for a GPU (test clusters only): pods run the vLLM CPU build, and no GPU "
    "kernel, CUDA graph or GPU memory is exercised"
)

_BY_NAME: dict[str, GPUProduct] = {}
for _g in GPU_PRODUCTS:
    _BY_NAME[_g.product.upper()] = _g
    for _a in _g.aliases:
        _BY_NAME[_a.upper()] = _g


def lookup_gpu(name: str) -> GPUProduct | None:
    """Find a product by its GFD label value or a short alias (case-insensitive)."""
    return _BY_NAME.get(name.strip().upper())


def canonical_product(name: str) -> str:
    """The GFD label value for `name` (unknown products pass through unchanged: nodes may still offer them)."""
    gpu = lookup_gpu(name)
    return gpu.product if gpu else name
