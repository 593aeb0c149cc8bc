"""Where the models run, in which precision, and how a step is timed there.

- `resolve_device('cpu' | 'cuda' | 'cuda:N' | 'auto')`: auto is cuda when torch sees one, else cpu;
  asking for cuda without one is a one-line AblateError (never a silent fallback).
- `autocast_dtype(device, precision, model)`: the mixed-precision dtype of the base model's forward
  (auto: bf16 on GPUs that have it, else fp16; none on a CPU, where runs stay bit-identical to fp32 runs).
  On a CPU only an explicit `bf16` autocasts (it pays where the CPU has AVX512-BF16 or AMX; fp16 is GPU-only).
  A model can refuse autocast with `autocast_ok = False`; `precision='fp32'` turns it off.
- `Timer(device)`: CUDA events on a GPU (the paper's latency), perf_counter on a CPU.

The sampler's noise always comes from a CPU generator and is moved to the device, so a seed gives
the same noise on every device.
"""

from __future__ import annotations

import contextlib
import time
from typing import Optional

import torch

from ablate.errors import AblateError

DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_device(spec: str) -> None:
    """Cheap syntax check (no CUDA query): cpu, cuda, cuda:N or auto."""
    s = str(spec)
    if s in DEVICES or (s.startswith("cuda:") and s[5:].isdigit()):
        return
    raise AblateError(f"device: unknown device {spec!r}; choose cpu, cuda (or cuda:N) or auto")


def resolve_device(spec: "str | torch.device | None" = "auto") -> torch.device:
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = spec or "auto"
    check_device(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise AblateError(f"device: {spec} requested but torch sees no CUDA device; use --device cpu or auto")
    dev = torch.device(spec)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise AblateError(f"device: {spec} requested but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return dev


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise AblateError(f"amp: unknown autocast {precision!r}; choose one of {', '.join(PRECISIONS)}")


def autocast_dtype(device: torch.device, precision: str = "auto", model=None) -> Optional[torch.dtype]:
    """The autocast dtype for the base model's forward on `device`, or None for plain fp32."""
    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32":
        return None
    if device.type != "cuda":
        if precision == "fp16":
            raise AblateError("amp: fp16 autocast runs on a GPU only (--device cuda); on a CPU use fp32, auto or bf16")
        return torch.bfloat16 if precision == "bf16" else None
    if precision == "auto":
        if model is not None and not getattr(model, "autocast_ok", True):
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """A context running the forward in `dtype` (a no-op for None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def model_device(model) -> torch.device:
    """The device of a module's first parameter (cpu for a module without any)."""
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work so a timer measures it (a no-op on CPU)."""
    if device is not None and torch.device(device).type != "cuda":
        return
    if torch.cuda.is_available():
        torch.cuda.synchronize(device)


class Timer:
    """`with Timer(device) as t: ...` then `t.seconds`: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        self.seconds = float("nan")

    def __enter__(self) -> "Timer":
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self._end.record()
            self._end.synchronize()
            self.seconds = self._start.elapsed_time(self._end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self._t


def describe(device: torch.device) -> str:
    """'cpu' or 'cuda:0 (NVIDIA H200)' for logs."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
