"""One place for choosing the compute device, its dtype and the CPU thread count."""

from __future__ import annotations

import os


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), idle


def free_cores(window: float = 0.3) -> int:
    """Cores this process may use minus those other processes keep busy right now.

    Busy cores are measured over a short window from /proc/stat (the load average lags by minutes and would
    count work that just finished); elsewhere the 1-minute load average stands in.
    """
    import time

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        total0, idle0 = _cpu_times()
        time.sleep(window)
        total1, idle1 = _cpu_times()
        busy = (1.0 - (idle1 - idle0) / max(1, total1 - total0)) * (os.cpu_count() or cores)
    except (OSError, ValueError, IndexError):
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def configure_threads(threads: int | None = None) -> int:
    import torch

    n = threads or free_cores()
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    return n


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtypes() -> dict:
    """The floating dtypes by the short names the reports use."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_dtype(device: str, dtype: str | None = None):
    """fp16 on CUDA (bf16 where asked), fp32 on CPU: bf16 matmuls on CPUs without native bf16 are very slow (where
    the CPU has it, `compress quantize --method bf16` makes a bf16 system to measure against fp32). `dtype`: a short
    name or torch's (float32, float16, bfloat16)."""
    if dtype and dtype != "auto":
        return _dtypes()[{"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(dtype, dtype)]
    return _dtypes()["fp16" if device.startswith("cuda") else "fp32"]


def dtype_name(dtype) -> str:
    """A torch floating dtype as the reports name it (fp32, fp16, bf16)."""
    return next((name for name, d in _dtypes().items() if d == dtype), str(dtype))


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively: AMX tiles or AVX512-BF16 (the `amx_bf16` / `avx512_bf16`
    flags the Makefile's LLM_PRECISION reads). oneDNN's own bf16 check says yes to any AVX512 CPU, where bf16 is
    emulated."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes (not x86)
        return False


def describe_machine() -> dict:
    """The facts a benchmark figure depends on."""
    import platform

    import torch
    import transformers

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the widest vector ISA torch's kernels use
        "native_bf16": native_bf16(),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except ImportError:
        info["faiss"] = None
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
