"""The MaskGIT sampling loop (docs/method.md), kept apart from the model as a diffusers scheduler is.

Per step i of N: logits for [cond; uncond] (from the base model on full steps, from the
method otherwise) -> CFG with weight w*i/(N-1) -> sample every masked position from
softmax(logits*sm_temp) -> confidence = log p + r_temp*(1-i/(N-1))*Gumbel -> commit the top-k.

All randomness comes from one generator seeded per batch and is drawn in the same shapes at every
step whatever the method, so methods are compared on identical labels and noise. The generator is a CPU
one whatever the device (noise is moved to the model's device), so a seed means the same noise on
CPU and GPU; the model and method calls run under autocast when `amp_dtype` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

import torch

from ablate.device import Timer, autocast, model_device
from ablate.sampling.policy import StepOutput, StepPolicy, StepState, Unaccelerated
from ablate.sampling.schedule import mask_schedule, order_ranks


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 16
    cfg_w: float = 1.0  # guidance weight at the last step (ramped linearly from 0)
    r_temp: float = 7.0  # Gumbel noise on confidences at step 0 (annealed to 0)
    sm_temp: float = 1.0  # softmax temperature multiplier on logits
    schedule: str = "arccos"
    unmasking: str = "confidence"  # which masked positions a step commits: confidence (MaskGIT) | halton (fixed, spread)


@dataclass
class SampleOutput:
    tokens: torch.Tensor  # (B, L) final tokens
    order: torch.Tensor  # (B, L) step at which each position was committed
    full_steps: list[int] = field(default_factory=list)
    # generate(): (full steps, images, steps taken) per batch; steps taken per image where finished samples leave
    # the batch (a policy's `per_sample`)
    batches: list[tuple[list[int], int, Union[int, list[int]]]] = field(default_factory=list)
    steps_taken: int = 0  # steps run: N, or fewer where a policy commits faster and nothing is left masked


Hook = Callable[[StepState, StepOutput], None]


def _gumbel(shape, gen: torch.Generator, device=None) -> torch.Tensor:
    """Drawn from the CPU generator, then moved: the same seed gives the same noise on every device."""
    u = torch.rand(shape, generator=gen).clamp_(1e-20, 1.0)
    g = -torch.log((-torch.log(u)).clamp_min(1e-20))
    return g if device is None else g.to(device)


class MaskGITSampler:
    def __init__(self, model, cfg: SamplerConfig, amp_dtype: Optional[torch.dtype] = None):
        """Runs on the model's device; amp_dtype: autocast dtype of the model/method calls (None = fp32)."""
        self.model = model
        self.cfg = cfg
        self.counts = mask_schedule(cfg.steps, model.seq_len, cfg.schedule)
        self.device = model_device(model)
        ranks = order_ranks(cfg.unmasking, model.seq_len)
        # a fixed order commits by priority instead of confidence (the noise is still drawn: same streams either way)
        self.priority = None if ranks is None else -ranks.to(self.device, torch.float32)
        self.amp_dtype = amp_dtype

    def guidance(self, step: int) -> float:
        n = self.cfg.steps
        return self.cfg.cfg_w * (step / (n - 1) if n > 1 else 1.0)

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor,
        generator: torch.Generator,
        method: Optional[StepPolicy] = None,
        hooks: Iterable[Hook] = (),
    ) -> SampleOutput:
        """One batch; `method` is the step policy (None: every step a full step, MaskGIT's commit rule)."""
        model, cfg = self.model, self.cfg
        policy = method if method is not None else Unaccelerated(cfg.steps)
        if policy.steps != cfg.steps:
            raise ValueError(f"method built for {policy.steps} steps, sampler runs {cfg.steps}")
        hooks = list(hooks)
        b, L = labels.shape[0], model.seq_len
        dev = self.device
        labels = labels.to(dev)
        tokens = torch.full((b, L), model.mask_id, dtype=torch.long, device=dev)
        order = torch.full((b, L), -1, dtype=torch.long, device=dev)
        committed_prev = torch.zeros(b, L, dtype=torch.bool, device=dev)
        branches = 2 if cfg.cfg_w != 0 else 1
        policy.begin(model, b)
        done_full = []
        taken = 0
        for i in range(cfg.steps):
            mask = tokens == model.mask_id
            if i and not bool(mask.any()):  # a policy that commits more than the schedule may finish early
                break
            taken = i + 1
            state = StepState(i, cfg.steps, tokens, labels, mask, committed_prev, model.mask_id, model.num_classes, branches)
            state.is_full = policy.is_full(state)
            with autocast(dev, self.amp_dtype):
                if state.is_full:
                    logits2, feature2 = policy.full_step(model, state)
                else:
                    logits2, feature2 = policy.skip_step(model, state)
            if state.is_full:
                done_full.append(i)
            if branches == 2:
                cond, uncond = logits2.float().chunk(2)
                w = self.guidance(i)
                logits = (1 + w) * cond - w * uncond
            else:
                logits = logits2.float()
            logp = torch.log_softmax(logits * cfg.sm_temp, dim=-1)
            sampled = (logp + _gumbel(logp.shape, generator, dev)).argmax(-1)  # Gumbel-max = categorical sample
            conf = logp.gather(-1, sampled[..., None]).squeeze(-1)
            state.sampled_logp = conf
            noise_scale = cfg.r_temp * (1 - i / (cfg.steps - 1)) if cfg.steps > 1 else 0.0
            conf = conf + noise_scale * _gumbel(conf.shape, generator, dev)
            pick = conf if self.priority is None else self.priority.expand_as(conf)
            committed = policy.commit(state, pick, self.counts[i])
            tokens = torch.where(committed, sampled, tokens)
            order = torch.where(committed, torch.full_like(order, i), order)
            out = StepOutput(logits2, feature2, sampled, committed)
            for hook in hooks:
                hook(state, out)
            committed_prev = committed
        return SampleOutput(tokens, order, done_full, steps_taken=taken)

    def generate(
        self,
        labels: torch.Tensor,
        seed: int,
        batch_size: int = 250,
        method: Optional[StepPolicy] = None,
        hooks: Iterable[Hook] = (),
        batch_times: Optional[list] = None,
        known: Optional[dict] = None,
    ) -> SampleOutput:
        """Sample for all `labels` in batches; batch j draws its noise from seed (seed, j).

        batch_times, if given, receives (seconds, images) per sampled batch: the latency measure's raw data.
        known: {j: SampleOutput} batches drawn before (the same seed, labels and method), used instead of sampling.
        """
        tokens, order, full, batches = [], [], [], []
        for j, start in enumerate(range(0, len(labels), batch_size)):
            if known and j in known:
                out = known[j]
            else:
                gen = torch.Generator().manual_seed(batch_seed(seed, j))
                with Timer(self.device) as timer:  # CUDA events on a GPU, perf_counter on a CPU
                    out = self.sample(labels[start : start + batch_size], gen, method, hooks)
                if batch_times is not None:
                    batch_times.append((timer.seconds, len(out.tokens)))
            tokens.append(out.tokens.to(self.device))
            order.append(out.order.to(self.device))
            full = out.full_steps
            steps = out.steps_taken or int(out.order.max()) + 1  # a stored batch: its last commit's step
            if getattr(method, "per_sample", False):  # finished samples left the batch: each took its own steps
                steps = (out.order.max(1).values + 1).tolist()
            batches.append((list(out.full_steps), len(out.tokens), steps))
        return SampleOutput(torch.cat(tokens), torch.cat(order), full, batches)


def batch_seed(seed: int, batch_index: int) -> int:
    return (seed * 1_000_003 + batch_index) % (2**63 - 1)


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., C-1, 0, 1, ...: every class equally often (up to one)."""
    return torch.arange(n) % num_classes
