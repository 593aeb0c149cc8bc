"""Training the shortcut on teacher trajectories.

Loss: MSE between predicted and teacher features over positions still masked after the step (as
in the paper), plus an optional KL through the frozen head at temperature T (scaled by T^2).
AdamW, lr x0.1 after two thirds of the steps, EMA of the weights; `rollout` > 1 feeds the
shortcut its own predictions for that many steps, as at sampling time.

`rollout_tokens` says which tokens the later rollout steps commit. `teacher`: the stored ones, and the target
is the stored teacher feature. `student` (as the paper's official code): the tokens that the student's own
predicted feature samples through the frozen head (at the positions the teacher committed, softmax at
`sm_temp` of the trajectories; a row is one guidance branch, so it samples from that branch's logits), and
the target is the base model's feature recomputed on that student state (one base forward per later
rollout step). Sampling then never hands the shortcut a state it has not trained on.

Rows of a batch sit at different steps, which commit different numbers of tokens, so each row's new tokens
are padded to the batch's largest count with a validity mask (`pair_inputs`). Measured against one step per
batch (`python benchmarks/pair_throughput.py --rounds 20`: interleaved, 20 rounds of 10 steps, batch 64,
rollout 2, 2 CPU threads): 15.4 against 15.7 it/s, the same speed, and mixed batches keep every step in every
gradient.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ablate.device import model_device
from ablate.models.protocol import token_table
from ablate.progress import progress
from ablate.shortcut.model import Shortcut, ShortcutConfig
from ablate.shortcut.trajectories import TrajectoryConfig, Trajectories


# Version of what training pairs mean, part of every store key of trajectories and trained shortcuts:
# a shortcut trained by an older format is never found for a newer one. 1: every row of a batch took the
# new-token count of row 0 (rows at other steps saw wrong tokens, some still masked); 2: each row its own.
TRAINING_FORMAT = 2


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 6000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    ema: float = 0.995
    rollout: int = 2  # at B = 4 of N = 16 sampling chains 3 shortcut steps; training on 2 closes most of that gap
    mse_weight: float = 1.0
    kl_weight: float = 3.0  # KL through the frozen head: B4 FID 40.3 (MSE only), 37.7 (1), 35.1 (3), 36.6 (10)
    kl_temp: float = 1.0
    seed: int = 0
    rollout_tokens: str = "teacher"  # teacher | student: see the module docstring
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)


def padded(selected: torch.Tensor, tokens: torch.Tensor):
    """The selected positions of each row (b, L) bool, in increasing position order, padded to the largest count:
    (positions, their tokens, valid), padding at position 0 with token 0 and valid False."""
    counts = selected.sum(1)
    k = int(counts.max())
    pos = selected.float().argsort(dim=1, descending=True, stable=True)[:, :k]
    valid = torch.arange(k, device=pos.device)[None, :] < counts[:, None]
    pos = pos.masked_fill(~valid, 0)
    return pos, tokens.gather(1, pos).masked_fill(~valid, 0), valid


def pair_inputs(data: dict, img: torch.Tensor, s: torch.Tensor):
    """Teacher pairs at steps s -> s+1, one step per row (rows may sit at different steps).

    Returns (positions, new tokens, valid, mask ratio after s, masked after s). Row i sees exactly the
    positions committed at *its* step s[i], in increasing position order as the sampler hands them over;
    rows that commit fewer tokens than the batch's largest count are padded, and `valid` (b, k) marks the
    real entries (the shortcut's attention never looks at padding). Padding rather than one step per
    batch: see the module docstring.
    """
    order = data["order"][img]  # (b, L)
    pos, new_tokens, valid = padded(order == s[:, None], data["tokens"][img])
    still_masked = order > s[:, None]
    ratio = still_masked.float().mean(1)
    return pos, new_tokens, valid, ratio, still_masked


def student_state(data, img, br, s, base, feature, tokens, gen, sm_temp: float):
    """Commit, at the positions the teacher committed at step s, tokens sampled from the student's `feature`
    through the frozen head; returns (new tokens of the committed positions as `pair_inputs` orders them,
    the state after s, and the base model's feature recomputed on it: the student rollout's target)."""
    pos, _, valid, _, _ = pair_inputs(data, img, s)
    with torch.no_grad():
        logits = base.head(feature).float() * sm_temp  # (b, L, vocab)
        picked = logits.gather(1, pos[..., None].expand(-1, -1, logits.shape[-1]))
        u = torch.rand(picked.shape, generator=gen).to(picked.device).clamp_(1e-20, 1.0)
        sampled = (torch.log_softmax(picked, -1) - torch.log(-torch.log(u))).argmax(-1)  # Gumbel-max
        sampled = sampled.masked_fill(~valid, 0)
        tokens = tokens.clone()
        rows = torch.arange(len(img), device=img.device)[:, None].expand_as(pos)
        tokens[rows[valid], pos[valid]] = sampled[valid]
        labels = data["labels"][img].to(tokens.device)
        labels = torch.where(br == 1, torch.full_like(labels, base.num_classes), labels)  # branch 1: unconditional
        _, target = base(tokens, labels)
    return sampled, tokens, target.float()


def feature_loss(f, target, masked, head, cfg: TrainConfig) -> torch.Tensor:
    """MSE over the positions still masked (whose logits sampling reads), plus KL through the frozen head."""
    m = masked[..., None].float()
    denom = m.sum().clamp_min(1) * f.shape[-1]
    loss = cfg.mse_weight * ((f - target) ** 2 * m).sum() / denom
    if cfg.kl_weight > 0:
        t = cfg.kl_temp
        p_teacher = F.log_softmax(head(target) / t, -1)
        p_student = F.log_softmax(head(f) / t, -1)
        kl = (p_teacher.exp() * (p_teacher - p_student)).sum(-1)
        loss = loss + cfg.kl_weight * t * t * (kl * masked).sum() / masked.sum().clamp_min(1)
    return loss


def shortcut_loss(shortcut, base, data, img, br, s, cfg: TrainConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    feats = data["features"][img, br]  # (b, N, L, d)
    rows = torch.arange(len(img), device=img.device)
    f = feats[rows, s]
    head = base.head
    student = cfg.rollout_tokens == "student"
    if student:  # the state before step s: tokens committed at earlier steps, the rest masked
        order = data["order"][img]
        state = torch.where(order < s[:, None], data["tokens"][img], torch.full_like(order, base.mask_id))
    total = 0.0
    for r in range(cfg.rollout):
        step = s + r
        pos, new_tokens, valid, ratio, masked = pair_inputs(data, img, step)
        if student and r == 0:
            state = torch.where(order <= step[:, None], data["tokens"][img], state)
            target = feats[rows, step + 1]
        elif student:
            new_tokens, state, target = student_state(data, img, br, step, base, f.detach(), state, gen,
                                                      cfg.trajectories.sm_temp)
        else:
            target = feats[rows, step + 1]
        f = shortcut(f, new_tokens, pos, ratio, valid)
        total = total + feature_loss(f, target, masked, head, cfg)
    return total / cfg.rollout


def train_shortcut(base, traj: Trajectories, sc_cfg: ShortcutConfig, cfg: TrainConfig, desc="shortcut"):
    """Returns (EMA shortcut in eval mode, stats)."""
    # Same start condition whatever the global RNG state: a fixed seed per training config.
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = model_device(base)
    shortcut = Shortcut(sc_cfg, token_table(base), base.position_embedding()).to(dev)
    stream = traj.batches(cfg.batch_size, cfg.rollout, gen, device=dev)
    roll_gen = torch.Generator().manual_seed(cfg.seed + 1)  # student rollout's token draws (teacher: unused)

    def batch_loss():
        data, img, br, s = next(stream)
        return shortcut_loss(shortcut, base, data, img, br, s, cfg, roll_gen)

    return optimise(shortcut, batch_loss, cfg, desc)


def optimise(net, batch_loss, cfg: TrainConfig, desc: str):
    """AdamW on `batch_loss()` for cfg.steps steps, lr x0.1 after two thirds, EMA of the weights: what every
    learned feature predictor here trains with. Returns (EMA copy in eval mode, stats)."""
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, 2 * cfg.steps // 3)], gamma=0.1)
    losses = []
    t = time.perf_counter()
    bar = progress(range(cfg.steps), desc=desc)
    for step in bar:
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1 - cfg.ema)
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    ema.eval()
    k = max(1, len(losses) // 10)
    stats = {
        "train_seconds": time.perf_counter() - t,
        "loss_first": sum(losses[:k]) / k,
        "loss_last": sum(losses[-k:]) / k,
        "shortcut_params": ema.num_params(),
    }
    return ema, stats


def forecast_sources(full, steps: int) -> dict[int, tuple[int, int]]:
    """{skipped step t: (last full step before t, the one before it, or -1)} of a full-step schedule."""
    full = sorted(full)
    out = {}
    for t in range(steps):
        before = [s for s in full if s < t]
        if t not in full and before:
            out[t] = (before[-1], before[-2] if len(before) > 1 else -1)
    return out


def residual_inputs(data: dict, img, br, t, src: dict[int, tuple[int, int]]):
    """Teacher pairs of the residual shortcut at skipped steps t (one per row, rows may differ).

    Returns (forecast, positions, tokens, valid, mask ratio, masked): the first-order forecast of f(t) from the
    teacher's features at the last two full steps before t (one: the cache), the positions committed since the
    last full step (t_k <= order < t) with their tokens, padded per row as in `pair_inputs`, the mask ratio at
    the start of t and the positions still masked then (whose logits sampling reads)."""
    feats = data["features"][img, br]  # (b, N, L, d)
    rows = torch.arange(len(img), device=img.device)
    last = torch.tensor([src[int(x)][0] for x in t], device=t.device)
    prev = torch.tensor([src[int(x)][1] for x in t], device=t.device)
    f_k = feats[rows, last]
    has_prev = prev >= 0
    f_p = feats[rows, prev.clamp_min(0)]
    slope = (f_k - f_p) / (last - prev).clamp_min(1)[:, None, None].to(f_k.dtype)
    forecast = f_k + torch.where(has_prev[:, None, None], slope, torch.zeros_like(slope)) * (t - last)[:, None, None].to(f_k.dtype)
    order = data["order"][img]
    pos, new_tokens, valid = padded((order >= last[:, None]) & (order < t[:, None]), data["tokens"][img])
    masked = order >= t[:, None]
    return forecast, pos, new_tokens, valid, masked.float().mean(1), masked


def train_residual(base, traj: Trajectories, sc_cfg: ShortcutConfig, cfg: TrainConfig, full, desc="residual shortcut"):
    """The residual shortcut of a schedule: f(t) = forecast(t) + g(forecast(t), tokens since the last full step,
    mask ratio), trained on every skipped step of `full` (no chain: each skipped step starts from its forecast)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = model_device(base)
    net = Shortcut(sc_cfg, token_table(base), base.position_embedding()).to(dev)
    src = forecast_sources(full, traj.cfg.steps)
    skips = torch.tensor(sorted(src))
    stream = traj.batches(cfg.batch_size, 1, gen, device=dev)

    def batch_loss():
        data, img, br, _ = next(stream)
        t = skips[torch.randint(0, len(skips), (len(img),), generator=gen)].to(img.device)
        forecast, pos, tokens, valid, ratio, masked = residual_inputs(data, img, br, t, src)
        target = data["features"][img, br][torch.arange(len(img), device=img.device), t]
        return feature_loss(net(forecast, tokens, pos, ratio, valid), target, masked, base.head, cfg)

    return optimise(net, batch_loss, cfg, desc)
