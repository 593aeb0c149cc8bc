"""Cost of sampling: FLOPs (torch's FlopCounterMode, which does not drift) and wall-clock latency.

FLOPs are split per step type by a sampler hook: the counter is cumulative, so the FLOPs between
two hook calls belong to that step, full or accelerated. Latency comes from timing each
generation batch after a warm-up (median per image); VQ decoding is timed apart.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from ablate.device import Timer, synchronize

# torch counts fused attention on GPUs but not the CPU kernel; without this, attention would be free here.
_CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
if _CPU_SDPA.default not in flop_counter.flop_registry:

    @flop_counter.register_flop_formula(_CPU_SDPA)
    def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


@dataclass
class FlopCount:
    total: int = 0
    images: int = 0
    # (step, is_full, flops, images the step computed: all of them, or those left where finished samples leave)
    per_step: list[tuple[int, bool, int, int]] = field(default_factory=list)

    def _mean(self, full: bool) -> float:
        """Mean FLOPs of one image's step of this kind."""
        xs = [f / n for _, is_full, f, n in self.per_step if is_full == full and n]
        return sum(xs) / len(xs) if xs else 0.0

    def as_measures(self) -> dict[str, float]:
        full, accel = self._mean(True), self._mean(False)
        return {
            "gflops_per_image": self.total / self.images / 1e9,
            "gflops_full_step": full / 1e9,
            "gflops_accel_step": accel / 1e9,
            "accel_cost_ratio": accel / full if full else 0.0,
        }


def count_flops(sampler, labels: torch.Tensor, generator: torch.Generator, method=None) -> FlopCount:
    """FLOPs of sampling `labels` once: total and per step (whatever the method runs)."""
    counter = FlopCounterMode(display=False)
    result = FlopCount(images=len(labels))
    last = [0]

    def hook(state, out):
        now = counter.get_total_flops()
        rows = int(state.mask.any(1).sum()) if getattr(method, "per_sample", False) else len(labels)
        result.per_step.append((state.step, state.is_full, now - last[0], rows))
        last[0] = now

    with counter:
        sampler.sample(labels, generator, method, hooks=[hook])
    result.total = counter.get_total_flops()
    return result


def median_ms_per_image(batch_seconds: list[tuple[float, int]]) -> float:
    """Median over batches of (seconds / images), in milliseconds."""
    return 1000.0 * statistics.median(s / n for s, n in batch_seconds)


def timed(fn, *args, device=None, **kw):
    """Run fn and return (result, seconds): CUDA events on a GPU (after a sync), perf_counter on a CPU."""
    synchronize(device)
    with Timer(device) as timer:
        out = fn(*args, **kw)
    return out, timer.seconds


def num_params(*modules) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())
