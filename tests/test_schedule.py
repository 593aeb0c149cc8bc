"""The full-step rule and the mask schedule: results are only comparable if these are exact."""

import pytest

from ablate.errors import AblateError
from ablate.sampling.schedule import full_steps, mask_schedule

# Hand-derived from the rule step 0, then max(prev + 1, round(N*k/B)) with round-half-to-even;
# N15B7, N32B8, N32B12 and N64B11 are the examples printed in the paper.
PAPER = {
    (15, 7): [0, 2, 4, 6, 9, 11, 13],
    (15, 8): [0, 2, 4, 6, 8, 9, 11, 13],  # 15*4/8 = 7.5 -> 8 (half to even), 15*5/8 = 9.375 -> 9
    (32, 8): [0, 4, 8, 12, 16, 20, 24, 28],
    (32, 9): [0, 4, 7, 11, 14, 18, 21, 25, 28],
    (32, 12): [0, 3, 5, 8, 11, 13, 16, 19, 21, 24, 27, 29],
    (64, 9): [0, 7, 14, 21, 28, 36, 43, 50, 57],
    (64, 11): [0, 6, 12, 17, 23, 29, 35, 41, 47, 52, 58],
    (64, 14): [0, 5, 9, 14, 18, 23, 27, 32, 37, 41, 46, 50, 55, 59],
}


@pytest.mark.parametrize("n,b", sorted(PAPER))
def test_full_steps_match_paper(n, b):
    assert full_steps(n, b) == PAPER[(n, b)]


def test_half_to_even_matters():
    # Python's round: 5/2 = 2.5 -> 2 (round-half-up would give 3), 7/2 = 3.5 -> 4.
    assert full_steps(5, 2) == [0, 2]
    assert full_steps(7, 2) == [0, 4]  # 3.5 -> 4


@pytest.mark.parametrize("n", [1, 2, 5, 16, 33])
def test_full_budget_is_every_step(n):
    assert full_steps(n, n) == list(range(n))
    assert full_steps(n, 1) == [0]


@pytest.mark.parametrize("n,b,field", [(4, 5, "budget"), (4, 0, "budget"), (0, 1, "steps"), (-3, -4, "steps")])
def test_impossible_budget(n, b, field):
    with pytest.raises(AblateError, match=f"^{field}:"):
        full_steps(n, b)


@pytest.mark.parametrize("n", [1, 2, 8, 16, 32, 49])
def test_mask_schedule_fills_every_position(n):
    counts = mask_schedule(n, 49)
    assert len(counts) == n and sum(counts) == 49 and min(counts) >= 1


def test_arccos_schedule_commits_few_first():
    counts = mask_schedule(16, 49)
    assert counts[0] == 1  # arccos(1) = 0: the first step commits the minimum
    assert counts[:8] == sorted(counts[:8])


def test_mask_schedule_rejects_more_steps_than_positions():
    with pytest.raises(AblateError, match="^steps:"):
        mask_schedule(50, 49)


def test_halton_order_known_answer_on_the_7x7_grid():
    """Bases 2 (columns) and 3 (rows), from the sequence's first point (1/2, 1/3): cell (row 2, col 3) = 17, then
    (1/4, 2/3) -> 29, (3/4, 1/9) -> 5, ...; every cell exactly once."""
    from ablate.sampling.schedule import halton_order

    order = halton_order(7, 7)
    assert order[:12] == [17, 29, 5, 21, 39, 9, 27, 42, 3, 16, 33, 8]
    assert sorted(order) == list(range(49))


def test_the_halton_unmasking_commits_each_step_the_next_cells_of_the_order(tiny_model):
    """With `unmasking: halton` the positions a step commits are the next ones of the Halton order, as many as the
    mask schedule says, whatever the confidences (checked against a broken version once: a sampler that ignored the
    setting committed by confidence)."""
    import torch

    from ablate.sampling import MaskGITSampler, SamplerConfig
    from ablate.sampling.schedule import halton_order

    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps=4, unmasking="halton"))
    out = sampler.sample(torch.tensor([0, 1, 2]), torch.Generator().manual_seed(0))
    cells, start = halton_order(3, 3), 0
    for step, count in enumerate(sampler.counts):
        want = sorted(cells[start:start + count])
        for row in out.order:
            assert sorted(torch.nonzero(row == step).flatten().tolist()) == want
        start += count
    with pytest.raises(AblateError, match="^unmasking: unknown order 'spiral'"):
        MaskGITSampler(tiny_model, SamplerConfig(steps=4, unmasking="spiral"))
