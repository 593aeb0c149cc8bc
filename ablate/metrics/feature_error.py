"""Per-step feature error against the vanilla trajectory with the same seed (the paper's evidence).

Both runs see the same labels and noise; at each step we compare the feature the sampler used
(fresh on full steps, predicted on cheap ones) with what vanilla's base model computed: MSE and
cosine similarity, averaged over positions, both CFG branches and the samples still decoding at that step.
"""

from __future__ import annotations

import torch

from ablate.sampling import MaskGITSampler


def _record(sampler: MaskGITSampler, labels, seed: int, method=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each step's feature and the rows it computed (a sample with nothing masked may have left the batch)."""
    feats = []
    sampler.sample(labels, torch.Generator().manual_seed(seed), method,
                   hooks=[lambda s, o: feats.append((o.feature, s.mask.any(1).repeat(s.branches)))])
    return feats


def feature_error(sampler: MaskGITSampler, labels: torch.Tensor, seed: int, method) -> dict[str, list[float]]:
    """{'feature_mse': [per step], 'feature_cos': [per step]}; empty lists when steps differ (step_reduction)."""
    if method.steps != sampler.cfg.steps:
        return {"feature_mse": [], "feature_cos": []}
    ref = _record(sampler, labels, seed)
    got = _record(sampler, labels, seed, method)
    pairs = [(a[rows], b[rows]) for (a, rows), (b, _) in zip(got, ref)]  # the samples still decoding at that step
    mse = [float(((a - b) ** 2).mean()) for a, b in pairs]
    cos = [float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()) for a, b in pairs]
    return {"feature_mse": mse, "feature_cos": cos}
