"""The search-cost replay (analysis/search_cost.py): what each strategy pays, and what it finds, on known tables."""

import numpy as np
import pytest

from ablate.evaluate import prefix_seconds
from analysis import search_cost as sc

OBJ = [("fid", "min"), ("speedup_flops", "max")]


def table(fids_small, fids_big, speed=None, train=None):
    """Configs with 0.1 s of sampling and 0.01 s of scoring per image; fid at 500 / 1,000 and at 2,000."""
    out = []
    for i, (fs, fb) in enumerate(zip(fids_small, fids_big)):
        sp = 2.0 if speed is None else speed[i]
        values = {500: {"fid": fs, "speedup_flops": sp}, 1000: {"fid": fs, "speedup_flops": sp},
                  2000: {"fid": fb, "speedup_flops": sp}}
        key, secs = (train[i] if train else (None, 0.0))
        out.append(sc.make_config(f"c{i}", {"method": "m", "budget": i}, values,
                                  {n: 0.1 * n for n in values}, {n: 0.01 * n for n in values}, key, secs))
    return out


def test_prefix_seconds_are_the_first_batches_and_only_when_all_were_sampled():
    times = [(2.0, 250), (3.0, 250), (4.0, 250), (5.0, 250)]
    assert prefix_seconds(times, 1000) == {"sample_seconds_n250": 2.0, "sample_seconds_n500": 5.0}
    assert prefix_seconds([(2.0, 400), (3.0, 400), (5.0, 400)], 1200) == {
        "sample_seconds_n250": pytest.approx(2.0 * 250 / 400), "sample_seconds_n500": pytest.approx(2.0 + 3.0 / 4),
        "sample_seconds_n1000": pytest.approx(2 + 3 + 5 / 2)}
    assert prefix_seconds(times[2:], 1000) == {}  # the first batches came from the store: no prefix timing


def test_halving_pays_only_new_images_and_each_model_once():
    cfgs = table(range(9), range(9), train=[("k", 100.0)] * 2 + [(None, 0.0)] * 7)
    t = sc.replay_halving(cfgs, [500, 1000, 2000], 3.0, OBJ, np.random.default_rng(0))
    # rung 1: 9 x (50 + 5); rung 2: 3 x (50 new images + 10 scoring); rung 3: 1 x (100 + 20); training once
    assert t.cost[-1] == pytest.approx(9 * 55 + 3 * 60 + 1 * 120 + 100)
    assert len(t.cost) == 13 and t.top[-1] == ("c0",)
    g = sc.replay_grid(cfgs, 2000, np.random.default_rng(0))
    assert g.cost[-1] == pytest.approx(9 * 220 + 100) and len(g.top[-1]) == 9


def test_halving_finds_the_grid_frontier_when_small_samples_rank_alike_and_misses_it_when_not():
    speed = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    fids = [10, 11, 12, 13, 14, 30, 31, 32, 33]  # the first five trade off, the last four are dominated
    cfgs = table(fids, fids, speed=speed)
    front = sc.frontier(cfgs, [c.name for c in cfgs], 2000, OBJ)
    assert front == {f"c{i}" for i in range(9)}  # every one trades FID for speed: all on the frontier
    cfgs = table(fids, [10, 11, 12, 13, 14, 40, 41, 42, 43], speed=[1, 2, 3, 4, 5, 1, 1, 1, 1])
    front = sc.frontier(cfgs, [c.name for c in cfgs], 2000, OBJ)
    assert front == {f"c{i}" for i in range(5)}
    t = sc.replay_halving(cfgs, [500, 2000], 1.5, OBJ, np.random.default_rng(1))
    assert sc.frontier(cfgs, t.top[-1], 2000, OBJ) == front
    # small-sample FID that ranks a dominated config first: halving with eta 9 keeps only that one
    bad = table([50, 11, 12, 13, 14, 1, 41, 42, 43], [10, 11, 12, 13, 14, 40, 41, 42, 43], speed=[1] * 9)
    assert sc.frontier(bad, [c.name for c in bad], 2000, OBJ) == {"c0"}
    t = sc.replay_halving(bad, [500, 2000], 9.0, OBJ, np.random.default_rng(0))
    assert t.top[-1] == ("c5",)


def test_hypervolume_curve_steps_up_to_the_full_grid():
    cfgs = table([10, 11, 12], [10, 11, 12], speed=[1.0, 2.0, 3.0])
    ref = [13.0, 0.0]
    g = sc.replay_grid(cfgs, 2000, np.random.default_rng(0))
    curve = sc.hv_curve(g, cfgs, 2000, OBJ, ref, [0.0, *g.cost])
    assert curve[0] == 0.0 and np.all(np.diff(curve) >= 0)
    assert curve[-1] == pytest.approx(3 * 1 + 2 * 1 + 1 * 1)  # staircase: (13-10)*1 + (13-11)*1 + (13-12)*1
    assert sc.seconds_to_reach(g, cfgs, 2000, OBJ, ref, curve[-1]) == pytest.approx(g.cost[-1])


def test_optuna_replay_asks_the_space_and_runs_what_it_asks():
    cfgs = table([10, 11, 12, 13], [10, 11, 12, 13], speed=[1.0, 2.0, 3.0, 4.0])
    t = sc.replay_optuna(cfgs, 2000, OBJ, n_trials=6, seed=0)
    assert len(t.cost) == 6 and t.cost[-1] == pytest.approx(6 * 220)  # repeats are run (and paid) again
    assert set(t.top[-1]) <= {c.name for c in cfgs}


def test_optuna_replay_searches_a_grid_of_unlike_rows():
    """A method with its own ablation rows (not a product of its knobs) is asked only for rows the grid holds:
    a product of every knob's values (absent = its own value) holds 2,187 combinations, this grid 9; every ask
    is one of them, so 20 trials take 20 asks."""
    vals = {n: {"fid": 10.0, "speedup_flops": 2.0} for n in (1000, 2000)}
    rows = [{"method": "shortcut", "budget": 4, "n_block": 1, "use_tokens": True, "kl_weight": 3.0},
            {"method": "shortcut", "budget": 4, "n_block": 2, "use_tokens": True, "kl_weight": 3.0},
            {"method": "shortcut", "budget": 4, "n_block": 1, "use_tokens": False, "kl_weight": 3.0},
            {"method": "shortcut", "budget": 4, "n_block": 1, "use_tokens": True, "kl_weight": 0.0},
            {"method": "shortcut", "budget": 4, "n_block": 1, "use_tokens": True, "kl_weight": 3.0, "bottleneck": 4},
            {"method": "shortcut", "budget": 4, "n_block": 1, "use_tokens": True, "kl_weight": 3.0,
             "rollout_tokens": "student"},
            {"method": "taylor", "budget": 4, "order": 0}, {"method": "taylor", "budget": 4, "order": 1},
            {"method": "step_reduction", "budget": 4}]
    cfgs = [sc.make_config(f"c{i}", p, vals, {n: 1.0 for n in vals}, {n: 0.0 for n in vals}, None, 0.0)
            for i, p in enumerate(rows)]
    t = sc.replay_optuna(cfgs, 2000, OBJ, n_trials=20, seed=0)
    assert len(t.cost) == 20 and t.cost[-1] == pytest.approx(20.0)
    asked = {name for top in t.top for name in top}
    assert len(asked) >= 4  # it explores the rows, not one


def test_a_live_sweep_is_scored_against_the_grid_it_replays():
    """A live halving sweep: CPU as logged (each model trained once), what it found on the top count, and the
    largest gap between its measures and the grid's at the same count (0 when the images are the same)."""
    import pandas as pd

    cfgs = table([10, 20, 30], [11, 21, 31], speed=[1.0, 2.0, 3.0])
    rows = [("m", b, n, fid, sp, 0.1 * n, 0.01 * n, 7.0) for b, fid, sp in [(0, 10, 1.0), (1, 20, 2.0), (2, 30, 3.0)]
            for n in [500]] + [("m", 0, 2000, 11.0, 1.0, 150.0, 20.0, 7.0), ("vanilla", 16, 2000, 5.0, 1.0, 1e6, 0, 0)]
    df = pd.DataFrame(rows, columns=["method", "B", "n_samples", "fid", "speedup_flops", "sample_seconds",
                                     "quality_seconds", "train_seconds"])
    lv = sc.live_sweep(df, [], OBJ, cfgs, 2000)
    assert lv["found"] == ["c0"] and lv["runs"] == 4 and lv["unknown"] == []
    assert lv["cpu_seconds"] == pytest.approx(3 * 55 + 170 + 7)  # the vanilla reference left out, training once
    assert lv["max_abs_diff_vs_grid"] == 0 and lv["compared"] == 8
    df.loc[3, "fid"] = 11.5  # a live number that is not the grid's
    assert sc.live_sweep(df, [], OBJ, cfgs, 2000)["max_abs_diff_vs_grid"] == pytest.approx(0.5)
    df.loc[0, "B"] = 9  # a configuration the grid never ran
    assert sc.live_sweep(df, [], OBJ, cfgs, 2000)["unknown"] == [str({"method": "m", "budget": 9})]
    # two seeds: the grid's values are seed means, so a count is compared once its runs cover both seeds
    two = pd.DataFrame([("m", 0, 2000, fid, 1.0, 1.0, 1.0, 0.0, seed) for seed, fid in [(0, 10.0), (1, 12.0)]],
                       columns=["method", "B", "n_samples", "fid", "speedup_flops", "sample_seconds",
                                "quality_seconds", "train_seconds", "seed"])
    lv = sc.live_sweep(two, [], OBJ, cfgs, 2000, seeds=[0, 1])
    assert lv["max_abs_diff_vs_grid"] == 0 and lv["compared"] == 2 and lv["not_compared"] == 0
    lv = sc.live_sweep(two.iloc[:1], [], OBJ, cfgs, 2000, seeds=[0, 1])
    assert lv["compared"] == 0 and lv["not_compared"] == 1 and lv["found"] == ["c0"]
    assert sc.params_key({"method": "t", "budget": 2, "order": 1}) == sc.params_key(
        {"method": "t", "budget": 2.0, "order": 1.0, "other": float("nan")})


def test_a_live_run_is_charged_everything_but_its_set_up_where_it_logs_it():
    """Runs that log `setup_seconds` are charged eval - set-up (sampling, warm-up, FLOPs count, feature error,
    scoring), which is what a live sweep spends on them; older runs their sampling and scoring only."""
    import pandas as pd

    df = pd.DataFrame({"sample_seconds": [10.0, 10.0], "quality_seconds": [2.0, 2.0], "eval_seconds": [20.0, 15.0],
                       "setup_seconds": [1.0, None]})
    assert list(sc.besides_sampling(df)) == [9.0, 2.0]
    assert list(sc.besides_sampling(df.drop(columns="setup_seconds"))) == [2.0, 2.0]
