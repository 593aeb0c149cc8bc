"""The statistics that decide a study's claims: corrections, equal-cost interpolation, margins, power, and the
group-sequential test that adds seeds only where a claim is undecided.

The simulation test was checked against the naive procedure once (testing again at alpha after every added seed):
its false-positive rate, 0.144 here (the sequential test: 0.050), fails the bound the sequential test passes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import stats


def test_holm_and_bh_adjust_a_family():
    p = [0.01, 0.04, 0.03, 0.2]
    assert stats.adjust(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert stats.adjust(p, "bh") == pytest.approx([0.04, 0.0533333, 0.0533333, 0.2], abs=1e-6)
    assert math.isnan(stats.adjust([0.01, math.nan], "holm")[1])


def test_power_and_mde_agree_with_the_known_t_test_numbers():
    """At a paired SD of 2, a difference of 2 takes 10 seeds uncorrected and 19 at alpha / 16; 3 seeds find
    3.26 SD (statsmodels' TTestPower gives the same)."""
    assert stats.seeds_needed(2.0, 2.0, 0.05) == 10 and stats.seeds_needed(2.0, 2.0, 0.05 / 16) == 19
    assert stats.mde(1.0, 3, 0.05) == pytest.approx(3.264, abs=1e-3)
    assert stats.power(stats.mde(1.0, 8, 0.01) , 8, 0.01) == pytest.approx(0.8, abs=1e-6)


def test_margins_decide_no_loss_and_equivalence_only_inside_the_interval():
    small = [0.1, -0.2, 0.05, 0.0, 0.1]
    assert stats.tost_p(small, 1.0) < 0.01 and stats.tost_p(small, 0.05) > 0.2
    assert stats.non_inferiority_p([0.1, 0.3, 0.2], 1.0) < 0.05  # losses well under the margin
    assert stats.non_inferiority_p([0.9, 1.3, 1.1], 1.0) > 0.5  # a loss about the margin: not shown


def _entries(fids_a, fids_b, flops_b=None, kind="better", margin=None, drop=(), seed_plan=None):
    from analysis.claims import evaluate

    rows = []
    for method, fids, flops in (("taylor", fids_a, {4: 2.0}), ("feature_cache", fids_b, flops_b or {4: 1.9})):
        for b, gf in flops.items():
            rows += [{"method": method, "B": b, "N": 16, "seed": s, "fid": f + (0 if b == 4 else (4 - b) * 1.0),
                      "gflops_per_image": gf, "n_samples": 100}
                     for s, f in enumerate(fids) if (method, b, s) not in drop]
    side = lambda m: {"method": m, "knobs": {}, "given": {}, "budget": None}  # noqa: E731
    claim = {"name": "c", "better": side("taylor"), "other": side("feature_cache"), "measures": ["fid"],
             "budgets": [4], "kind": kind, "margin": {"fid": margin} if margin else {}}
    return evaluate(pd.DataFrame(rows), [claim], "s", seed_plan=seed_plan)


def test_equal_cost_interpolates_the_other_seed_by_seed_and_never_extrapolates():
    a = [30.0, 31.0, 29.0]
    b = [33.0, 34.5, 32.0]
    # feature caching at B = 4 costs 1.9 and at B = 5 costs 2.4 (its FID 1 lower there): at taylor's 2.0, 20% of the
    # way, the interpolated FID is b - 0.2
    e = _entries(a, b, {4: 1.9, 5: 2.4})[0]
    assert e["equal_cost"] == "interpolated" and e["cost_diff"] == pytest.approx(0.1)
    assert e["diff_equal_cost"] == pytest.approx(np.mean(np.array(a) - (np.array(b) - 0.2)))
    e = _entries(a, b, {4: 1.9, 3: 1.5})[0]  # every run of the other is cheaper: n/a, with the reason
    assert e["equal_cost"].startswith("n/a: no run of feature_cache on each side of 2.000")
    assert e.get("p_equal_cost") is None
    e = _entries(a, b, {4: 2.0})[0]
    assert e["equal_cost"].startswith("same cost")
    # a seed where the other ran only the equal budget is no pair either (no extrapolation); the rest interpolate
    e = _entries(a, b, {4: 1.9, 5: 2.4}, drop={("feature_cache", 5, 2)})[0]
    assert e["equal_cost"] == "interpolated" and e["n_seeds_equal_cost"] == 2
    assert e["diff_equal_cost"] == pytest.approx(np.mean(np.array(a[:2]) - (np.array(b[:2]) - 0.2)))
    # a seed only the first variant ran (seeds added for another claim) is no pair: the other seeds still interpolate
    e = _entries(a + [30.5], b, {4: 1.9, 5: 2.4})[0]
    assert e["equal_cost"] == "interpolated" and e["diff_equal_cost"] == pytest.approx(
        np.mean(np.array(a) - (np.array(b) - 0.2)))


def test_an_equal_cost_test_on_one_seed_count_is_looked_at_once_under_a_seed_plan():
    """The plan adds seeds at a claim's budget only, so an equal-cost test whose bracketing runs have 3 seeds is
    one look: Bonferroni on its p (a first group-sequential look at 3 of 8 seeds could hardly ever decide)."""
    a, b = [30.0, 31.0, 29.0], [33.0, 34.5, 32.0]
    e = _entries(a, b, {4: 1.9, 5: 2.4}, seed_plan={"min": 3, "max": 8})[0]
    assert e["n_seeds_equal_cost"] == 3 and e["family_size"] == 2
    assert e["p_adjusted_equal_cost"] == pytest.approx(2 * e["p_equal_cost"])
    assert e["verdict_equal_cost"] == "HOLDS"


def test_a_claim_at_equal_flops_only_pairs_every_run_of_a_budgetless_method_with_the_interpolated_other():
    """Parallel decoding has no budget to pair by: its runs (B = N) against step reduction interpolated at their
    FLOPs, seed by seed; its verdict is that test's, and it is n/a (never extrapolated) outside the other's runs
    (checked against a broken version once: pairing at B = N found no step reduction run and gave n/a)."""
    from analysis.claims import evaluate, markdown

    rows = []
    for s, f in enumerate([30.0, 31.0, 29.0]):
        rows.append({"method": "parallel_decode", "B": 16, "N": 16, "seed": s, "fid": f,
                     "gflops_per_image": 7.5 + 0.1 * s, "n_samples": 100})
        for b, gf, df in ((14, 7.0, 2.0), (16, 8.0, 0.0)):
            rows.append({"method": "step_reduction", "B": b, "N": 16, "seed": s, "fid": f - 3.0 + df,
                         "gflops_per_image": gf, "n_samples": 100})
    side = lambda m: {"method": m, "knobs": {}, "given": {}, "budget": None}  # noqa: E731
    claim = {"name": "pd", "better": side("parallel_decode"), "other": side("step_reduction"), "measures": ["fid"],
             "at": "equal_cost", "kind": "better", "margin": {}}
    df = pd.DataFrame(rows)
    e = evaluate(df, [claim], "s")[0]
    # step reduction at 7.5 + 0.1 s GFLOPs: f - 3 + 2 * (1 - (0.5 + 0.1 s)) = f - 2 - 0.2 s
    want = [3.0 - 1.0 + 0.2 * s for s in range(3)]
    assert e["budget"] is None and e["compared"] == "equal_cost" and e["n_seeds"] == 3
    assert e["diff_equal_cost"] == pytest.approx(np.mean(want)) and e["verdict"] == e["verdict_equal_cost"]
    assert e["verdict"] == "DOES NOT HOLD" and e.get("p") is None
    assert any("at equal FLOPs only" in line for line in markdown([e], df))
    e = evaluate(df[~((df["method"] == "step_reduction") & (df["B"] == 16))], [claim], "s")[0]
    assert e["verdict"] == "n/a" and e["equal_cost"].startswith("n/a: no run of step_reduction on each side")


def test_a_no_loss_claim_holds_only_inside_its_margin_and_never_from_a_null_result():
    base = [30.0, 31.0, 29.0, 30.5]
    near = [30.1, 31.2, 29.1, 30.4]
    noisy = [28.0, 34.0, 27.0, 33.0]
    assert _entries(base, near, kind="no_loss", margin=2.5)[0]["verdict"] == "HOLDS"
    e = _entries(base, noisy, kind="no_loss", margin=2.5)[0]  # not significant either way: NOT SHOWN, with an mde
    assert e["verdict"] == "NOT SHOWN" and e["mde"] > 2.5


def _sequential_false_positives(reps: int, naive: bool, n_min=3, n_max=8, alpha=0.05, seed=1) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        d = rng.standard_normal(n_max)  # no true difference
        p_by_n = {n: float(sps.ttest_1samp(d[:n], 0.0).pvalue) for n in range(n_min, n_max + 1)}
        if naive:
            hits += any(p < alpha for p in p_by_n.values())
        else:
            hits += stats.sequential_p(p_by_n, n_min, n_max, alpha) < alpha
    return hits / reps


def test_adding_seeds_until_decided_keeps_the_false_positive_rate_and_naive_retesting_does_not():
    """2,000 simulated claims with no true difference, one seed added per look from 3 to 8: deciding by the
    group-sequential boundaries stays within alpha plus two Monte-Carlo standard errors; testing again at alpha after
    each seed does not."""
    reps, alpha = 2000, 0.05
    bound = alpha + 2 * math.sqrt(alpha * (1 - alpha) / reps)
    assert _sequential_false_positives(reps, naive=False) <= bound
    assert _sequential_false_positives(reps, naive=True) > bound


def test_seed_requests_add_a_seed_to_undecided_claims_only():
    from ablate.study.run import seed_requests
    from ablate.methods import knobs

    side = lambda m: {"method": m, "knobs": knobs(m, {}).model_dump(mode="json"), "budget": None}  # noqa: E731
    claims = {"open": {"better": side("taylor"), "other": side("feature_cache")},
              "closed": {"better": side("foca"), "other": side("feature_cache")}}
    entries = [{"claim": "open", "budget": 4, "verdict": "NOT SIGNIFICANT", "n_seeds": 3},
               {"claim": "closed", "budget": 4, "verdict": "HOLDS", "n_seeds": 3}]
    trials = [{"method": m, "budget": 4, "knobs": {}, "seed": s, "steps": 16, "cfg_w": 1.0}
              for m in ("taylor", "feature_cache", "foca") for s in range(8)]
    todo = seed_requests(entries, claims, list(range(8)), trials, set(), most=8)
    assert sorted((t["method"], t["seed"]) for t in todo) == [("feature_cache", 3), ("taylor", 3)]
    assert seed_requests([dict(entries[0], n_seeds=8)], claims, list(range(8)), trials, set(), most=8) == []


def test_seed_requests_add_a_seed_to_an_undecided_equal_cost_test_at_the_budgets_around_its_cost():
    """An equal-B verdict decided on 8 seeds with its equal-FLOPs test undecided on 3: the next seed goes to the
    first at its budget and to the second at the two budgets whose runs bracket that cost, where the evaluation put
    them (checked against the former code once: it requested nothing)."""
    from ablate.methods import knobs
    from ablate.study.run import seed_requests

    a, b = [30.0, 31.0, 29.0], [33.0, 34.5, 32.0]
    e = _entries(a, b, {4: 1.9, 5: 2.4})[0]
    assert e["budgets_equal_cost"] == [4, 5]
    side = lambda m: {"method": m, "knobs": knobs(m, {}).model_dump(mode="json"), "budget": None}  # noqa: E731
    claims = {"c": {"better": side("taylor"), "other": side("feature_cache")}}
    trials = [{"method": m, "budget": bb, "knobs": {}, "seed": s, "steps": 16, "cfg_w": 1.0}
              for m in ("taylor", "feature_cache") for bb in (3, 4, 5, 6) for s in range(8)]
    entry = dict(e, verdict="HOLDS", n_seeds=8, verdict_equal_cost="NOT SIGNIFICANT")
    todo = seed_requests([entry], claims, list(range(8)), trials, set(), most=8)
    assert sorted((t["method"], t["budget"], t["seed"]) for t in todo) == [
        ("feature_cache", 4, 3), ("feature_cache", 5, 3), ("taylor", 4, 3)]
    assert seed_requests([dict(entry, verdict_equal_cost="HOLDS")], claims, list(range(8)), trials, set(),
                         most=8) == []
