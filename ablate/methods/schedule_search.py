"""Which B of the N steps are full, searched under the budget (in the spirit of BudCache and ReCache), instead of the
paper's fixed rule: for a method whose cheap steps work whatever the schedule (Taylor, the shortcut once trained).

Greedy local search from the paper's schedule: move one full step (never step 0) by one or two steps to a free place,
take the move that raises the objective most, repeat until no move does or the evaluations run out (60). Objective:
token agreement with the unaccelerated run of the same labels and noise, on 250 samples at a validation seed (100;
results report other seeds). The result is a store entry, like a trained model, keyed by everything it depends on.
Not a method of its own: `schedule: searched` on a method that offers it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SEARCH_FORMAT = 1
EVALS, IMAGES, SEED = 60, 250, 100


def neighbours(full: list[int], steps: int) -> list[list[int]]:
    """Schedules one move away: a full step other than 0 shifted by -2..2 onto a step that is not full."""
    out = []
    for i, s in enumerate(full):
        if s == 0:
            continue
        for d in (-1, 1, -2, 2):
            t = s + d
            if 0 < t < steps and t not in full:
                out.append(sorted(full[:i] + [t] + full[i + 1:]))
    return out


def greedy(start: list[int], steps: int, objective, evals: int = EVALS) -> tuple[list[int], float, int]:
    """(best schedule, its objective, evaluations spent): best-improvement moves from `start` within the budget."""
    best, value, spent = list(start), objective(start), 1
    while spent < evals:
        moves = neighbours(best, steps)[: evals - spent]
        if not moves:
            break
        scores = [objective(m) for m in moves]
        spent += len(moves)
        top = max(range(len(moves)), key=lambda i: scores[i])
        if scores[top] <= value:
            break
        best, value = moves[top], scores[top]
    return best, value, spent


def searched_full_steps(method, model, sampler_cfg, log=print) -> list[int]:
    """The method's searched schedule (a store entry; searched on first use, a few minutes on a CPU)."""
    from ablate import store
    from ablate.sampling import MaskGITSampler
    from ablate.sampling.sampler import balanced_labels, batch_seed
    from ablate.shortcut.cache import base_hash

    knobs = {k: v for k, v in method.knobs.model_dump(mode="json").items() if k != "schedule"}
    key = {"format": SEARCH_FORMAT, "base": base_hash(model), "method": method.name, "knobs": knobs,
           "sampler": dict(sampler_cfg.__dict__), "steps": method.steps, "budget": method.budget,
           "evals": EVALS, "images": IMAGES, "seed": SEED}  # the knobs name a trained model: it is in the key too

    def build(folder: Path):
        sampler = MaskGITSampler(model, sampler_cfg)
        labels = balanced_labels(IMAGES, model.num_classes)
        gen = lambda: torch.Generator().manual_seed(batch_seed(SEED, 0))  # noqa: E731 - the same noise each time
        with torch.no_grad():
            van = sampler.sample(labels, gen()).tokens

        seen: dict = {}

        def agreement(full: list[int]) -> float:
            if tuple(full) not in seen:
                method.full = set(full)
                with torch.no_grad():
                    tokens = sampler.sample(labels, gen(), method).tokens
                seen[tuple(full)] = float((tokens == van).float().mean())
            return seen[tuple(full)]

        paper = sorted(method.full)
        best, value, spent = greedy(paper, method.steps, agreement, EVALS)
        method.full = set(paper)
        log(f"schedule search ({method.name}, B = {method.budget} of N = {method.steps}): {paper} -> {best}, "
            f"token agreement {seen[tuple(paper)]:.4f} -> {value:.4f} in {spent} evaluations; cached after")
        (folder / "schedule.json").write_text(json.dumps({"paper": paper, "searched": best, "agreement": value,
                                                          "paper_agreement": seen[tuple(paper)],
                                                          "evaluations": spent}))

    folder = store.get_or_build("schedules", key, build, log=log)
    return json.loads((folder / "schedule.json").read_text())["searched"]
