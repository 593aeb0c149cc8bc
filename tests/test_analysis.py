"""Analysis: MLflow runs -> DataFrame -> Pareto/hypervolume -> figures and tables -> `report`.

Fake but realistic sweeps are written through the project's own `Tracker` (the same tags, params,
metric names and artifacts a real sweep writes), so the tracking contract is tested too. Pareto and
hypervolume are pinned by small hand-computed cases.
"""

from __future__ import annotations

import functools
import io
import math
import os
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from ablate.errors import AblateError
from analysis.pareto import hypervolume_2d, pareto_front, pareto_mask

# method -> (FID added at B = 4, cost ratio c of a cheap step, per-step feature error scale)
METHODS = {
    "vanilla": (0.0, 0.0, 0.0), "step_reduction": (10.0, 0.0, None), "feature_cache": (6.4, 0.0, 0.030),
    "taylor": (3.0, 0.006, 0.012), "ml_cache": (7.1, 0.10, 0.020), "recap": (6.7, 0.357, 0.016),
    "shortcut": (1.2, 0.040, 0.004),
}
DEFAULT_GRID = [("vanilla", None, {})] + [
    (m, b, k) for m, k in [("step_reduction", {}), ("feature_cache", {}), ("taylor", {"order": 1}), ("ml_cache", {}),
                           ("recap", {}), ("shortcut", {"n_block": 1, "use_tokens": True, "bottleneck": 2})]
    for b in (3, 4, 6)]
ABLATION_GRID = [("vanilla", None, {})] + [
    ("shortcut", b, k) for b in (3, 4) for k in [
        {"n_block": 0, "use_tokens": True, "bottleneck": 2}, {"n_block": 1, "use_tokens": True, "bottleneck": 2},
        {"n_block": 2, "use_tokens": True, "bottleneck": 2}, {"n_block": 1, "use_tokens": False, "bottleneck": 2},
        {"n_block": 1, "use_tokens": True, "bottleneck": 4}]]


def trial(method, budget, knobs, seed=0, steps=16) -> dict:
    """The dict a sweep logs for a trial (EvalConfig's fields)."""
    return {"dataset": "mnist", "method": method, "steps": steps, "budget": budget, "knobs": dict(knobs),
            "n_samples": 1000, "seed": seed, "extractor": "classifier", "batch_size": 250, "cfg_w": 2.0,
            "r_temp": 7.0, "sm_temp": 1.0, "flops_images": 2, "feature_error_images": 32, "base": None,
            "device": "cpu", "amp": "auto", "reference": "held_out"}


def full_steps(n, b):
    chosen = [0]
    for k in range(1, b):
        chosen.append(max(chosen[-1] + 1, round(n * k / b)))
    return chosen


def fake_measures(method, budget, knobs, seed, steps=16):
    """Plausible measures and per-step errors, shaped like the methods table in results/."""
    rng = np.random.default_rng(zlib.crc32(repr((method, budget, sorted(knobs.items()), seed)).encode()))
    d4, c, err = METHODS[method]
    b = budget or steps
    if method == "shortcut":
        d4 += {0: 5.0, 1: 0.0, 2: -0.6, 3: -0.8}[knobs.get("n_block", 1)]
        d4 += 0 if knobs.get("use_tokens", True) else 4.5
        d4 += {1: 0.8, 2: 0.0, 4: 1.5}[knobs.get("bottleneck", 2)]
        c = 0.015 + 0.025 * knobs.get("n_block", 1) / knobs.get("bottleneck", 2) * 2
        err *= 1 + 0.8 * (knobs.get("n_block", 1) == 0) + 1.5 * (not knobs.get("use_tokens", True))
    if method == "taylor":
        d4 += {0: 3.4, 1: 0.0, 2: -1.5}[knobs.get("order", 1)]
    shape = (steps / b - 1) / 3
    fid = 36.0 + d4 * shape + rng.normal(0, 0.4 if method == "vanilla" else 0.5)
    gflops = 0.495 * (b + (steps - b) * c)
    latency = 11.5 * (b + (steps - b) * c * 1.15) * (1.0 if method == "vanilla" else rng.uniform(0.95, 1.05))
    m = {"fid": fid, "kid_mean": 19.5 + 0.9 * (fid - 36), "kid_std": 3.7, "precision": 0.82 - 0.004 * (fid - 36),
         "recall": 0.62 - 0.003 * (fid - 36), "class_acc": 0.99 - 0.0015 * max(0.0, fid - 36),
         "latency_ms_per_image": latency, "images_per_s": 1000 / latency, "gflops_per_image": gflops,
         "speedup_wall": 11.5 * steps / latency, "speedup_flops": 0.495 * steps / gflops,
         "ideal_speedup": steps / (b + (steps - b) * c),
         "accel_cost_ratio": c, "params": 2420224, "shortcut_params": 52000 if method == "shortcut" else 0,
         "train_seconds": 95.0 if method == "shortcut" else 0.0}
    per_step = {}
    if err is not None:
        fulls = set(full_steps(steps, b))
        mse, last = [], 0
        for s in range(steps):
            last = s if s in fulls else last
            drift = err * 0.15 * s / steps  # a rollout: tokens differ after the first cheap step, even at full ones
            mse.append(0.0 if s == 0 else drift if s in fulls
                       else err * (s - last) ** 1.3 * (1 + s / steps) * rng.uniform(0.9, 1.1))
        per_step = {"feature_mse": mse, "feature_cos": [1 - 1.6 * v for v in mse]}
        m["feature_mse"] = sum(mse) / steps
        m["feature_cos"] = sum(per_step["feature_cos"]) / steps
    return m, per_step


@functools.lru_cache(maxsize=1)
def _digit_grid() -> np.ndarray:
    """A 10 x 10 grid of drawn digits (class c in row c), drawn once."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (10 * 30 + 2, 10 * 30 + 2), 40)
    draw = ImageDraw.Draw(canvas)
    for c in range(10):
        for j in range(10):
            draw.rectangle([2 + j * 30, 2 + c * 30, 29 + j * 30, 29 + c * 30], fill=0)
            draw.text((11 + j * 30 + (j % 3) - 1, 9 + c * 30 + (j % 2)), str(c), fill=255)
    return np.asarray(canvas, dtype=float)


def sample_png(fid: float, seed: int) -> bytes:
    """What samples.png looks like (one class per row), noisier for a worse FID."""
    from PIL import Image

    a = _digit_grid()
    a = np.clip(a + np.random.default_rng(seed).normal(0, 2.5 * max(0.0, fid - 30), a.shape), 0, 255)
    img = Image.fromarray(a.astype(np.uint8))
    buf = io.BytesIO()
    img.resize((img.width * 2, img.height * 2), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


TEMPLATE_DB: list = []  # an empty, migrated MLflow database to copy (creating one takes seconds)


def describe(method, budget, knobs, steps=16) -> dict:
    """The description a real trial logs (evaluate.Setup.describe), with a made-up base model."""
    from ablate import methods

    return {**methods.build(method, steps, budget, **knobs).describe(), "base_id": "native:mnist",
            "base_digest": "0" * 64, "dataset": "mnist", "reference_split": "train", "seed": 0,
            "versions": {"torch": "x"}}


def fake_sweep(runs_root: Path, experiment: str, grid=DEFAULT_GRID, seeds=(0,), drop=(), failed=0, steps=16,
               finish=True, samples=True, old_style=False) -> tuple[str, str]:
    """Writes a sweep (parent run + child runs) through Tracker; returns (tracking uri, parent run id).

    drop: measure names left out of every trial (a store from an older version); failed: extra FAILED trials;
    old_style: trials that log no description (runs of ablate 0.1: only the knobs the space named).
    """
    from ablate.tracking import mlflow_log
    from ablate.tracking.mlflow_log import FINISHED, Tracker

    old = os.environ.get("ABLATE_RUNS"), mlflow_log.git_commit, mlflow_log.plot_feature_error
    os.environ["ABLATE_RUNS"] = str(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    if TEMPLATE_DB and not (runs_root / "mlflow.db").exists():
        shutil.copy(TEMPLATE_DB[0], runs_root / "mlflow.db")
    # Speed only: no `git` subprocess per run, and a stub for the per-run plot (analysis never reads it).
    mlflow_log.git_commit = lambda: "0" * 40
    mlflow_log.plot_feature_error = lambda per_step, path: Path(path).write_bytes(b"\x89PNG stub")
    try:
        uri = f"sqlite:///{runs_root / 'mlflow.db'}"
        tr = Tracker(uri, experiment)
        parent = tr.start_parent(experiment, "space" + experiment, {"name": experiment})
        for seed in seeds:
            for method, budget, knobs in grid:
                t = trial(method, budget, knobs, seed, steps)
                run = tr.start_child(parent, t, "space" + experiment)
                m, per_step = fake_measures(method, budget, knobs, seed, steps)
                m = {k: v for k, v in m.items() if k not in drop}
                if not finish:
                    tr.fail_child(run, "Traceback...\nRuntimeError: out of memory")
                    continue
                tr.finish_child(run, m, per_step, sample_png(m.get("fid", 40.0), seed) if samples else None,
                                None if old_style else describe(method, budget, knobs, steps))
        for i in range(failed):
            run = tr.start_child(parent, trial("shortcut", 2, {"checkpoint": f"/no/such/{i}"}), "space" + experiment)
            tr.fail_child(run, "Traceback...\nAblateError: checkpoint: no such file")
        tr.end_parent(parent, FINISHED, {"trials_finished": len(grid) * len(seeds)})
        return uri, parent
    finally:
        mlflow_log.git_commit, mlflow_log.plot_feature_error = old[1], old[2]
        if old[0] is None:
            os.environ.pop("ABLATE_RUNS", None)
        else:
            os.environ["ABLATE_RUNS"] = old[0]


TEST_GRID = [("vanilla", None, {})] + [
    (m, b, k) for m, k in [("step_reduction", {}), ("feature_cache", {}), ("taylor", {"order": 1}),
                           ("shortcut", {"n_block": 1, "use_tokens": True})]  # bottleneck left to its default
    for b in (3, 4)] + [
    ("shortcut", 4, k) for k in [{"n_block": 0, "use_tokens": True}, {"n_block": 2, "use_tokens": True},
                                 {"n_block": 1, "use_tokens": False},
                                 {"n_block": 1, "use_tokens": True, "bottleneck": 4}]]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()  # creates and migrates the tables
    TEMPLATE_DB[:] = [path]
    yield path
    TEMPLATE_DB.clear()


@pytest.fixture(scope="module")
def store(tmp_path_factory, template_db):
    """A default-like sweep: references, baselines at B = 3 and 4, shortcut variants at B = 4, one FAILED trial."""
    root = tmp_path_factory.mktemp("store")
    uri, parent = fake_sweep(root / "runs", "default", grid=TEST_GRID, failed=1)
    return uri, parent, root


# -- Pareto and hypervolume: small hand-computed cases ---------------------------------------------

def test_front_drops_dominated_points_min_min():
    pts = [(1, 5), (2, 3), (3, 4), (4, 1)]  # (3, 4) is beaten by (2, 3) in both
    assert pareto_mask(pts, ["min", "min"]).tolist() == [True, True, False, True]
    assert pareto_front(pts, ["min", "min"]).tolist() == [0, 1, 3]


def test_front_ties():
    # Identical points both stay; equal in one objective and worse in the other is dominated.
    pts = [(1, 2), (1, 2), (1, 3), (0, 9)]
    assert pareto_mask(pts, ["min", "min"]).tolist() == [True, True, False, True]
    assert hypervolume_2d(pts[:2], (3, 3), ["min", "min"]) == pytest.approx(2.0)  # counted once


def test_front_single_point_and_empty():
    assert pareto_front([(7, 7)], ["min", "max"]).tolist() == [0]
    assert hypervolume_2d([(2, 3)], (5, 5), ["min", "min"]) == pytest.approx(6.0)
    assert pareto_front(np.empty((0, 2)), ["min", "min"]).tolist() == []
    assert hypervolume_2d(np.empty((0, 2)), (1, 1), ["min", "min"]) == 0.0


def test_front_and_hypervolume_min_max_mix():
    # (fid, speedup): fid minimised, speedup maximised.
    pts = [(36, 1), (40, 4), (38, 2), (45, 3.9), (41, 4)]
    assert pareto_front(pts, ["min", "max"]).tolist() == [0, 2, 1]  # sorted by fid
    # Against (fid 50, speedup 1): fid 38..40 adds 2 x (2-1), fid 40..50 adds 10 x (4-1); (36, 1) adds nothing.
    assert hypervolume_2d(pts, (50, 1), ["min", "max"]) == pytest.approx(32.0)
    # The same numbers with the objectives swapped give the same area.
    swapped = [(s, f) for f, s in pts]
    assert hypervolume_2d(swapped, (1, 50), ["max", "min"]) == pytest.approx(32.0)


def test_hypervolume_max_max_and_points_beyond_reference():
    pts = [(1, 3), (2, 2), (3, 1), (2, 1)]
    assert pareto_mask(pts, ["max", "max"]).tolist() == [True, True, True, False]
    assert hypervolume_2d(pts, (0, 0), ["max", "max"]) == pytest.approx(3 + 2 + 1)
    assert hypervolume_2d([(-1, 5)], (0, 0), ["max", "max"]) == 0.0  # worse than the reference in one


def test_pareto_nan_and_bad_modes():
    assert pareto_mask([(1, np.nan), (2, 2)], ["min", "min"]).tolist() == [False, True]
    with pytest.raises(AblateError, match="mode"):
        pareto_mask([(1, 2)], ["min", "up"])
    with pytest.raises(AblateError, match="2 modes"):
        pareto_mask([(1, 2, 3)], ["min", "min"])


# -- loading ------------------------------------------------------------------------------------------

def test_split_stepped_recovers_mean_and_steps():
    from mlflow.entities import Metric

    from analysis.runs import split_stepped

    per_step = [0.0, 0.2, 0.4, 0.0]
    mean = sum(per_step) / 4
    logged = [Metric("feature_mse", mean, 1, 0)] + [Metric("feature_mse", v, 1, i) for i, v in enumerate(per_step)]
    assert split_stepped(logged) == (pytest.approx(mean), per_step)
    only_steps = [Metric("feature_mse", v, 1, i) for i, v in enumerate(per_step)]
    assert split_stepped(only_steps) == (pytest.approx(mean), per_step)


def test_load_runs_tidy_frame(store):
    from analysis.runs import load_runs

    uri, parent, _ = store
    df = load_runs(["default"], [uri])
    assert len(df) == len(TEST_GRID)  # the FAILED trial is left out
    assert set(df["parent_run_id"]) == {parent} and set(df["experiment"]) == {"default"}
    for col in ("method", "N", "B", "seed", "n_block", "use_tokens", "bottleneck", "order", "fid", "speedup_wall",
                "speedup_flops", "class_acc", "latency_ms_per_image", "feature_mse", "feature_cos"):
        assert col in df, col
    van = df[df["method"] == "vanilla"].iloc[0]
    assert van["N"] == 16 and van["B"] == 16
    sc = df[df["method"] == "shortcut"]
    assert set(sc["bottleneck"]) == {2, 4}  # the knob the sweep left out takes its default
    fc = df[(df["method"] == "feature_cache") & (df["B"] == 4)].iloc[0]
    steps = fc["feature_mse_steps"]
    expected, per_step = fake_measures("feature_cache", 4, {}, 0)
    assert len(steps) == 16 and steps[0] == 0.0 and steps == pytest.approx(per_step["feature_mse"])
    assert fc["feature_mse"] == pytest.approx(expected["feature_mse"])  # the mean, not the last step
    assert math.isnan(df[df["method"] == "step_reduction"]["feature_mse"].iloc[0])  # never logged: missing
    assert df["session"].nunique() == 1 and not df["session"].iloc[0].startswith("commit")  # one sweep, tagged


def test_report_reads_only_mlflow(store, tmp_path):
    """A fresh process that cannot import torch or any method code still loads the runs with every knob (the
    defaults a space left out included), each method's label, colour and marker, and draws the report."""
    uri, _, _ = store
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch' or name.startswith(('ablate.methods', 'ablate.sampling')):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from analysis.report import report\n"
        "from analysis.runs import load_runs\n"
        f"df = load_runs(['default'], [{uri!r}])\n"
        "sc = df[df['method'] == 'shortcut']\n"
        "assert set(sc['bottleneck']) == {2, 4}, set(sc['bottleneck'])\n"
        "assert set(sc['kl_weight']) == {3.0}, set(sc['kl_weight'])\n"
        "assert set(df['label']) >= {'MIGM-Shortcut', 'Taylor', 'Vanilla'}\n"
        "assert set(df.loc[df['method'] == 'taylor', 'color']) == {'#ff7f0e'}\n"
        "assert df.loc[df['method'] == 'taylor', 'full_steps'].iloc[0] in ([0, 5, 11], [0, 4, 8, 12])\n"
        f"rep = report(['default'], [{uri!r}], out=__import__('pathlib').Path({str(tmp_path / 'r')!r}))\n"
        "assert any(f.name == 'pareto_fid_vs_speedup_flops.png' for f in rep.files)\n"
        "assert 'torch' not in sys.modules\n"
    )
    import subprocess

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.usefixtures("template_db")
def test_runs_logged_before_descriptions_still_report(tmp_path):
    """Runs of ablate 0.1 (no description: only the knobs the space named, no look) load and report."""
    from analysis.report import report
    from analysis.runs import load_runs

    uri, _ = fake_sweep(tmp_path / "runs", "old", grid=TEST_GRID, old_style=True)
    df = load_runs(["old"], [uri])
    assert set(df["label"]) == set(df["method"])  # named by their method
    rep = report(["old"], [uri], out=tmp_path / "r")
    assert any(f.name == "summary.md" for f in rep.files)


@pytest.mark.usefixtures("template_db")
def test_rerun_trial_keeps_newest(tmp_path):
    from analysis.runs import load_runs

    grid = [("vanilla", None, {}), ("feature_cache", 4, {})]
    uri, _ = fake_sweep(tmp_path / "runs", "again", grid=grid)
    fake_sweep(tmp_path / "runs", "again", grid=grid)
    df = load_runs(["again"], [uri])
    assert len(df) == 2 and df["parent_run_id"].nunique() == 1  # the second sweep's runs


@pytest.mark.usefixtures("template_db")
def test_combine_two_experiments_and_two_uris(store, tmp_path):
    from analysis.figures import speed_vs_quality
    from analysis.labels import add_labels
    from analysis.runs import load_runs

    uri_a, _, _ = store
    grid = [("vanilla", None, {}), ("taylor", 4, {"order": 2})]
    uri_b, _ = fake_sweep(tmp_path / "other", "baselines", grid=grid, seeds=(0, 1), samples=False)
    fake_sweep(tmp_path / "other", "default", grid=grid, samples=False)  # the same name in a second store
    two_exps = load_runs(["default", "baselines"], [uri_a, uri_b], with_steps=False)
    assert set(two_exps["source"]) == {"default@runs/mlflow.db", "default@other/mlflow.db", "baselines"}
    assert len(two_exps) == len(TEST_GRID) + 2 + 2 * 2
    one_uri = load_runs(["baselines"], [uri_b])
    assert set(one_uri["source"]) == {"baselines"} and one_uri["seed"].nunique() == 2
    df = add_labels(two_exps)
    assert "Taylor (order=2) [baselines]" in set(df["series"])
    files = speed_vs_quality(df, tmp_path / "fig", speed="speedup_flops")
    assert [f.suffix for f in files] == [".png", ".pdf"] and all(f.stat().st_size > 1000 for f in files)
    (tmp_path / "empty").mkdir()
    shutil.copy(TEMPLATE_DB[0], tmp_path / "empty" / "mlflow.db")  # a store without those experiments
    with pytest.raises(AblateError, match=r"tracking uri .*holds none of the experiments"):
        load_runs(["baselines"], [uri_b, f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"])


@pytest.mark.usefixtures("template_db")
def test_clear_errors_for_bad_selection(store, tmp_path):
    from analysis.runs import load_runs

    uri, _, _ = store
    with pytest.raises(AblateError, match="no experiment named 'nope'"):
        load_runs(["nope"], [uri])
    with pytest.raises(AblateError, match="no MLflow database there"):
        load_runs(["default"], [f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"])
    assert not (tmp_path / "none").exists()  # looking creates nothing
    with pytest.raises(AblateError, match="no run 'feedface'"):
        load_runs([], [uri], parents=["feedface"])
    failed, _ = fake_sweep(tmp_path / "runs", "broken", grid=[("vanilla", None, {})], finish=False)
    with pytest.raises(AblateError, match=r"experiment 'broken': no FINISHED trial runs \(1 FAILED\)"):
        load_runs(["broken"], [failed])
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=failed).create_experiment("empty")
    with pytest.raises(AblateError, match=r"'empty': no FINISHED trial runs \(no trial runs at all\)"):
        load_runs(["empty"], [failed])


# -- figures and tables ---------------------------------------------------------------------------------

def hand_frame():
    """Three methods at one budget, two seeds each, two of them tied at the best FLOPs speedup."""
    import pandas as pd

    from analysis.labels import add_labels

    rows = []
    for method, fid, speed in [("vanilla", (36.0, 36.2), 1.0), ("feature_cache", (42.0, 44.0), 4.0),
                               ("taylor", (40.0, 41.0), 3.9), ("shortcut", (37.0, 38.0), 4.0)]:
        for seed, f in enumerate(fid):
            rows.append({"source": "x", "experiment": "x", "tracking_uri": "u", "run_id": f"{method}{seed}",
                         "run_name": method, "parent_run_id": "p", "start_time": 0, "method": method, "N": 16,
                         "label": {"vanilla": "Vanilla", "feature_cache": "Feature caching", "taylor": "Taylor",
                                   "shortcut": "MIGM-Shortcut"}[method],
                         "B": 16 if method == "vanilla" else 4, "seed": seed, "fid": f, "speedup_flops": speed,
                         "speedup_wall": speed + seed * 0.1, "feature_mse_steps": None, "feature_cos_steps": None})
    return add_labels(pd.DataFrame(rows))


def test_summary_table_interval_and_significant_best():
    """Mean ± 95% t half-width over seeds; bold only where the seed-paired test says best beats every other."""
    from analysis.tables import summary

    t = summary(hand_frame(), ["fid", "speedup_flops", "speedup_wall"])
    md, tex = t.markdown(), t.latex()
    assert "| Vanilla | 16 | 36.10 ± 1.27 |" in md  # 12.706 * 0.1414 / sqrt(2); the reference: never marked
    # FID: the shortcut is best, and beats Taylor by exactly 3 on both seeds (p = 0), but feature caching only by
    # 5 and 6 (paired t = 11 on 1 degree of freedom, p = 0.058): not significant, so nothing is bold.
    assert "| MIGM-Shortcut | 4 | 37.50 ± 6.35 | 4.00 ± 0.00 |" in md
    # wall speed: shortcut and feature caching tie exactly (4.0, 4.1): no winner either.
    assert "**" not in md
    assert "\\toprule" in tex and "\\bottomrule" in tex and "37.50 $\\pm$ 6.35" in tex


def test_summary_shows_the_full_steps_an_adaptive_policy_took():
    """An adaptive method's budget is a mean: the table shows the full steps it took beside B (only when one ran),
    so 'at equal average B' can be read off the table."""
    import pandas as pd

    from analysis.labels import add_labels
    from analysis.tables import summary

    df = hand_frame()
    assert "full steps |" not in summary(df).markdown()
    extra = [dict(df.iloc[-1], run_id=f"adaptive{s}", run_name="adaptive", method="adaptive", label="Adaptive",
                  seed=s, full_steps_mean=v) for s, v in enumerate((3.9, 4.1))]
    md = summary(add_labels(pd.concat([df, pd.DataFrame(extra)], ignore_index=True))).markdown()
    head = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert "| full steps |" in head and "| 4.00 ± 1.27 |" in md and "fixed schedule takes B" in md  # no arrow
    # It describes the run, it is not a quality: fewer full steps on every seed is never bold.
    df = df.assign(full_steps_mean=np.where(df["method"] == "taylor", 3.0 + df["seed"] * 0.2, np.nan))
    md = summary(add_labels(pd.concat([df, pd.DataFrame(extra)], ignore_index=True))).markdown()
    assert "| 3.10 ± 1.27 |" in md and "**3.10" not in md


def test_bold_needs_a_significant_paired_win():
    import pandas as pd

    from analysis.labels import add_labels
    from analysis.tables import summary

    rows = []
    for method, fids in [("vanilla", (30, 31, 32)), ("taylor", (35.0, 36.0, 34.0)), ("shortcut", (34.0, 35.1, 33.2)),
                         ("feature_cache", (38.0, 39.0, 37.5))]:
        for seed, f in enumerate(fids):
            rows.append({"source": "x", "experiment": "x", "run_id": f"{method}{seed}", "method": method, "N": 16,
                         "label": method, "B": 16 if method == "vanilla" else 4, "seed": seed, "fid": f,
                         "run_name": method, "tracking_uri": "u", "parent_run_id": "p", "start_time": 0})
    md = summary(add_labels(pd.DataFrame(rows)), ["fid"]).markdown()
    assert "| shortcut | 4 | **34.10 ±" in md  # better than taylor by 1.0/0.9/0.8 and caching by ~4 on every seed
    rows = [r | {"fid": r["fid"] + (3.0 if r["run_id"] == "shortcut2" else 0.0)} for r in rows]
    md = summary(add_labels(pd.DataFrame(rows)), ["fid"]).markdown()
    assert "**" not in md  # one seed where the shortcut loses: the paired test no longer separates it


def test_wall_columns_of_several_sessions_are_not_ranked():
    """A resumed sweep times its later trials under another machine load: wall clocks from different sessions
    are never bold, and the table says why; within one session the same numbers may be."""
    import pandas as pd

    from analysis.labels import add_labels
    from analysis.tables import pareto, summary, wall_warning

    df = hand_frame()
    lat = {"vanilla": 200.0, "feature_cache": 50.0, "taylor": 52.0, "shortcut": 20.0}
    df = df.assign(latency_ms_per_image=[lat[m] + s for m, s in zip(df["method"], df["seed"])],
                   session="s1")
    df["speedup_wall"] = 200.0 / df["latency_ms_per_image"]
    md = summary(df, ["fid", "latency_ms_per_image", "speedup_wall"]).markdown()
    assert "**20.5 ± " in md and wall_warning(df) is None  # one session: the shortcut is faster on every seed
    later = add_labels(df.assign(session=np.where(df["method"] == "shortcut", "s2", "s1")))
    md = summary(later, ["fid", "latency_ms_per_image", "speedup_wall"]).markdown()
    assert "**" not in md and "mix 2 sweep sessions" in md
    t, _ = pareto(later, pairs=[("fid", "speedup_wall")], refs={"fid": 50.0})
    assert "**" not in t.markdown()
    # runs logged before the session tag fall back to their commit
    assert wall_warning(pd.DataFrame({"latency_ms_per_image": [1.0, 2.0], "session": ["commit a", "commit b"]}))


def test_pareto_table_states_reference(tmp_path):
    from analysis.tables import pareto

    t, data = pareto(hand_frame(), pairs=[("fid", "speedup_flops")], refs={"fid": 50.0})
    md = t.markdown()
    assert "Reference point for FID vs FLOPs speedup: fid = 50, speedup_flops = 1" in md
    # Seed means: shortcut (37.5, 4) dominates feature caching (43, 4) and Taylor (40.5, 3.9); area = 12.5 x 3.
    assert data["hypervolume"]["MIGM-Shortcut"]["fid|speedup_flops"] == pytest.approx(37.5)
    assert data["hypervolume"]["all methods"]["fid|speedup_flops"] == pytest.approx(37.5)
    # Per seed: (50 - 37) x 3 = 39 and (50 - 38) x 3 = 36; interval 12.706 x 2.121 / sqrt(2) = 19.1.
    assert data["hypervolume_per_seed"]["MIGM-Shortcut"]["fid|speedup_flops"] == pytest.approx([39.0, 36.0])
    assert "| MIGM-Shortcut | **37.5 ± 19.1** |" in md


def test_report_cli_writes_every_figure_and_logs_to_parent(store, tmp_path, capsys):
    """`python -m ablate report` (through cli.main): every figure and table, logged to the sweep's parent run."""
    from mlflow.tracking import MlflowClient

    from ablate.cli import main

    uri, parent, _ = store
    out = tmp_path / "out"
    rc = main(["report", "--experiment", "default", "--tracking-uri", uri, "--out", str(out), "--hv-ref", "fid=80"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert f"files to {out}: figures " in printed.out and f"parent run(s) {parent}" in printed.out
    stems = ["pareto_fid_vs_speedup_wall", "pareto_fid_vs_speedup_flops", "ablations", "feature_error_B4",
             "samples_B4"]
    for stem in stems:
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 2000, stem
    for name in ("summary", "ablation"):  # one seed: intervals and significance need more, so nothing is bold
        assert "**" not in (out / f"{name}.md").read_text() and "\\toprule" in (out / f"{name}.tex").read_text()
    assert "**" in (out / "pareto.md").read_text() and "\\textbf{" in (out / "pareto.tex").read_text()
    assert "fid = 80" in (out / "pareto.md").read_text()
    html = (out / "pareto_fid_vs_speedup_flops.html").read_text()
    assert "plotly" in html and "MIGM-Shortcut" in html and "n_block=0, use_tokens=true" in html  # knobs on hover
    assert "cdn.plot.ly" not in html.split("<script", 2)[1][:200]  # its script is inside: opens offline
    abl = (out / "ablation.md").read_text()
    assert "use_tokens=false" in abl and "n_block=0" in abl and "bottleneck=4" in abl
    readme = (out / "README.md").read_text()
    assert "python -m ablate report --experiment default" in readme and "![pareto_fid_vs_speedup_wall]" in readme
    logged = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(parent, "report")}
    assert {f"report/{s}.png" for s in stems} | {"report/summary.md", "report/summary.tex",
                                                 "report/pareto_fid_vs_speedup_flops.html"} <= logged


@pytest.mark.usefixtures("template_db")
def test_missing_measure_is_a_note_not_a_traceback(tmp_path, capsys):
    from ablate.cli import main
    from analysis.labels import add_labels
    from analysis.runs import load_runs, missing_note, require

    grid = [("vanilla", None, {}), ("feature_cache", 4, {}), ("taylor", 4, {})]
    uri, _ = fake_sweep(tmp_path / "runs", "old", grid=grid, drop=("speedup_wall",), samples=False)
    df = add_labels(load_runs(["old"], [uri]))
    with pytest.raises(AblateError, match="measure 'speedup_wall': no finished run has it"):
        require(df, ["fid", "speedup_wall"], "the figure")
    some = hand_frame()
    some.loc[some["run_id"] == "taylor1", "fid"] = float("nan")
    assert missing_note(some, ["fid"], "the figure") == "the figure: 1 run(s) lack fid and are left out (taylor)"
    rc = main(["report", "--experiment", "old", "--tracking-uri", uri, "--out", str(tmp_path / "out"), "--no-log"])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err
    assert (tmp_path / "out" / "pareto_fid_vs_speedup_flops.png").exists()
    assert not (tmp_path / "out" / "pareto_fid_vs_speedup_wall.png").exists()
    assert "note: fid vs speedup_wall figure skipped: measure 'speedup_wall': no finished run has it" in err
    assert "samples.png" in err  # the sample sheet says why it is missing


def test_cli_report_and_errors(store, tmp_path, capsys):
    from ablate.cli import main

    uri, _, _ = store
    rc = main(["report", "--experiment", "nope", "--tracking-uri", uri, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"error: experiment: no experiment named 'nope' in {uri}"]
    assert main(["report", "--tracking-uri", uri, "--hv-ref", "fid"]) == 2
    assert "--hv-ref" in capsys.readouterr().err


@pytest.mark.usefixtures("template_db")
def test_sweep_hook_reports_and_never_raises(tmp_path, monkeypatch, capsys):
    import analysis.report
    from ablate.cli import _sweep_report

    uri, parent = fake_sweep(tmp_path / "runs", "hooked", grid=[("vanilla", None, {})])
    monkeypatch.setenv("ABLATE_RUNS", str(tmp_path / "runs"))
    calls = []

    def fake_report(experiments, uris, parents, out):
        calls.append((experiments, uris, parents, out))
        return analysis.report.Report(out, files=[out / "a.png"], notes=["a note"])

    monkeypatch.setattr(analysis.report, "report", fake_report)
    _sweep_report({"experiment": "hooked", "tracking_uri": uri, "parent_run_id": parent})
    assert calls == [(["hooked"], [uri], [parent], tmp_path / "runs" / "reports" / "hooked")]
    printed = capsys.readouterr().out
    assert "report note: a note" in printed and "report: 1 files in" in printed
    monkeypatch.undo()
    monkeypatch.setenv("ABLATE_RUNS", str(tmp_path / "runs"))
    broken, bparent = fake_sweep(tmp_path / "runs", "broken", grid=[("vanilla", None, {})], finish=False)
    _sweep_report({"experiment": "broken", "tracking_uri": broken, "parent_run_id": bparent})  # the real report: nothing FINISHED is printed, not raised
    assert "report failed (AblateError: experiment 'broken': no FINISHED trial runs" in capsys.readouterr().out


def test_ablation_groups_never_average_two_settings_as_seeds():
    """A KL-weight variant at depth 1 must not be folded into the depth ablation's depth-1 point."""
    import pandas as pd

    from analysis.figures import ablation_groups

    rows = [dict(method="shortcut", B=4, n_block=d, use_tokens=True, bottleneck=2, time_embed=True, kl_weight=kl,
                 method_rank=6) for d, kl in [(0, 3.0), (1, 3.0), (2, 3.0), (1, 0.0)]]
    df = pd.DataFrame(rows)
    df.attrs["knobs"] = ["n_block", "use_tokens", "bottleneck", "time_embed", "kl_weight"]
    groups = ablation_groups(df)
    assert set(groups) == {("shortcut", "n_block"), ("shortcut", "kl_weight")}  # the knobs that vary, no list
    depth, kl = groups[("shortcut", "n_block")], groups[("shortcut", "kl_weight")]
    assert sorted(depth["n_block"]) == [0, 1, 2] and set(depth["kl_weight"]) == {3.0}
    assert sorted(kl["kl_weight"]) == [0.0, 3.0] and set(kl["n_block"]) == {1}


def test_claim_verdicts_follow_the_paired_test():
    """One claim alone (a family of one: no correction): the direction decides HOLDS or DOES NOT HOLD where the paired
    test is significant, NOT SIGNIFICANT where not, and one seed is untested."""
    import pandas as pd

    from analysis.claims import evaluate

    def verdict(a, b):
        rows = [{"method": m, "B": 4, "N": 16, "seed": s, "fid": f, "n_samples": 100}
                for m, fids in (("taylor", a), ("foca", b)) for s, f in fids.items()]
        return evaluate(pd.DataFrame(rows), [_claim("c", ("taylor", {}), ("foca", {}), measures=["fid"])], "s")[0]

    lower = {0: 30.0, 1: 31.0, 2: 29.5}
    assert verdict(lower, {0: 32.0, 1: 33.1, 2: 31.4})["verdict"] == "HOLDS"  # lower FID on every seed
    assert verdict({0: 32.0, 1: 33.1, 2: 31.4}, lower)["verdict"] == "DOES NOT HOLD"
    assert verdict(lower, {0: 31.0, 1: 30.0, 2: 30.0})["verdict"] == "NOT SIGNIFICANT"
    assert verdict({0: 1.0}, {0: 2.0})["verdict"] == "UNTESTED (1 seed)"


def _claim(name, better, other, **kw):
    """A claim as the study hands it to analysis.claims: each side's knobs resolved (here: what the test names)."""
    side = lambda m, k: {"method": m, "knobs": k, "given": k, "budget": None}  # noqa: E731
    return {"name": name, "better": side(*better), "other": side(*other),
            "measures": kw.pop("measures", ["fid", "token_agreement"]), **kw}


def test_claims_compare_each_budget_and_refuse_an_unnamed_variant():
    """One entry per claim, budget and measure; ML-Cache's two variants are told apart by their knob, Taylor's two
    orders too, a variant that did not run is n/a, and a pick that holds two runs of a seed (the variant not
    named) stops with one line instead of mixing them."""
    import pandas as pd

    from analysis.claims import evaluate, markdown

    rows = []
    for b in (3, 6):
        for method, knobs, fids in [("ml_cache", {"masked_only": False}, (40.0, 41.0, 39.0)),
                                    ("ml_cache", {"masked_only": True}, (38.0, 39.2, 36.9)),
                                    ("taylor", {"order": 1}, (35.0, 36.0, 34.0)),
                                    ("taylor", {"order": 2}, (30.0, 31.5, 29.0)),
                                    ("foca", {}, (33.0, 34.0, 32.5)),
                                    ("residual_shortcut", {}, (32.0, 33.0, 31.0))]:
            rows += [{"method": method, "B": b, "N": 16, "seed": sd, "fid": f + b, "token_agreement": 0.5,
                      "n_samples": 1000, "masked_only": knobs.get("masked_only"), "order": knobs.get("order")}
                     for sd, f in enumerate(fids)]
    df = pd.DataFrame(rows)
    claims = [_claim("masked only", ("ml_cache", {"masked_only": True}), ("ml_cache", {"masked_only": False})),
              _claim("foca vs tuned taylor", ("foca", {}), ("taylor", {"order": 2})),
              _claim("residual vs its forecast", ("residual_shortcut", {}), ("taylor", {"order": 1})),
              _claim("l2p", ("l2p", {}), ("taylor", {"order": 2}), budgets=[3, 6])]
    entries = evaluate(df, claims, "s")
    got = {(e["claim"], e["budget"], e["measure"]): e for e in entries}
    for b in (3, 6):
        assert got[("masked only", b, "fid")]["verdict"] == "HOLDS"
        assert got[("foca vs tuned taylor", b, "fid")]["verdict"] == "DOES NOT HOLD"
        assert got[("residual vs its forecast", b, "fid")]["verdict"] == "HOLDS"
        assert got[("l2p", b, "fid")]["verdict"] == "n/a"  # not run
        assert got[("masked only", b, "fid")]["family"] == "s" and got[("masked only", b, "fid")]["n_seeds"] == 3
    rows = {tuple(line.split(" | ")[:3]): line.split(" | ") for line in markdown(entries, df) if line.startswith("| ")}
    assert rows[("| masked only", "3", "FID")][6] == "HOLDS" and rows[("| l2p", "6", "FID")][6] == "n/a"
    assert got[("masked only", 3, "fid")]["family_size"] == 6  # the tested (claim, budget) pairs on FID: l2p is n/a
    with pytest.raises(AblateError, match="^claims: ml_cache has several runs of one seed"):
        evaluate(df, [_claim("unnamed", ("ml_cache", {}), ("foca", {}))], "s")


def test_a_no_loss_claim_against_vanilla_keeps_the_two_shortcuts_apart():
    """N = 32 claims: the shipped shortcut and the one trained on N = 32 are judged separately, never pooled: the one
    that loses 3 FID does not show "no loss" within a 2.5 margin, the one within 0.4 of vanilla does; a claim on one
    measure has no row on the other."""
    import pandas as pd

    from analysis.claims import evaluate, markdown

    rows = []
    for method, b, traj, fids, agr in [("vanilla", 32, 16, (30.0, 31.0, 29.5), 1.0),
                                       ("shortcut", 8, 16, (33.0, 34.1, 32.4), 0.7),
                                       ("shortcut", 8, 32, (30.2, 30.8, 29.9), 0.8),
                                       ("step_reduction", 8, 16, (40.0, 41.0, 39.0), float("nan"))]:
        rows += [{"method": method, "B": b, "N": 32, "seed": s, "fid": f, "token_agreement": agr, "n_samples": 1000,
                  "traj_steps": traj} for s, f in enumerate(fids)]
    df = pd.DataFrame(rows)
    claims = [_claim("no loss", ("vanilla", {}), ("shortcut", {"traj_steps": 16}), kind="no_loss",
                     margin={"fid": 2.5}, measures=["fid"]),
              _claim("no loss, N = 32", ("vanilla", {}), ("shortcut", {"traj_steps": 32}), kind="no_loss",
                     margin={"fid": 2.5}, measures=["fid"]),
              _claim("beats step reduction", ("shortcut", {"traj_steps": 16}), ("step_reduction", {}))]
    entries = evaluate(df, claims, "s")
    got = {(e["claim"], e["measure"]): e for e in entries}
    assert got[("no loss", "fid")]["verdict"] == "NOT SHOWN" and got[("no loss", "fid")]["mde"] is not None
    assert got[("no loss, N = 32", "fid")]["verdict"] == "HOLDS"
    assert got[("beats step reduction", "token_agreement")]["verdict"] == "n/a"  # step reduction has no paired run
    assert ("no loss", "token_agreement") not in got
    lines = {line.split(" | ")[0]: line for line in markdown(entries, df) if line.startswith("| ")}
    assert "| no loss (no loss, margin 2.5)" in lines


def test_tuning_read_back_chooses_by_mean_fid_and_charges_training_once():
    """analysis/tuning.py: one row per setting a method tried, the lowest mean FID chosen, a model shared by
    several runs charged once."""
    import pandas as pd

    from analysis import tuning
    rows = []
    for order, fids in [(0, (30.0, 31.0, 32.0)), (1, (28.0, 29.0, 33.0)), (2, (27.0, 36.0, 30.0))]:
        rows += [{"method": "taylor", "order": order, "kl_weight": float("nan"), "seed": 100 + i, "fid": f,
                  "token_agreement": 0.8, "eval_seconds": 10.0, "train_seconds": 0.0} for i, f in enumerate(fids)]
    for kl, fids in [(0.0, (25.0, 26.0, 27.0)), (3.0, (26.0, 26.5, 27.0))]:
        rows += [{"method": "shortcut", "order": float("nan"), "kl_weight": kl, "seed": 100 + i, "fid": f,
                  "token_agreement": 0.9, "eval_seconds": 5.0, "train_seconds": 400.0 + kl} for i, f in enumerate(fids)]
    df = pd.DataFrame(rows)
    df.attrs["knobs"] = ["order", "kl_weight"]
    table, chosen, budget = tuning.summarize(df)
    assert chosen == {"taylor": {"order": 1}, "shortcut": {"kl_weight": 0.0}}  # means 31.0 / 30.0 / 31.0; 26 / 26.5
    assert type(chosen["taylor"]["order"]) is int  # typed by the method's knobs, although the column is float
    assert [(m, k) for m, k, *_ in table] == [("shortcut", {"kl_weight": 0.0}), ("shortcut", {"kl_weight": 3.0}),
                                              ("taylor", {"order": 0}), ("taylor", {"order": 1}), ("taylor", {"order": 2})]
    p = {(m, tuple(k.values())): row[-1] for m, k, *row in table}
    assert p[("taylor", (1,))] is None and p[("shortcut", (0.0,))] is None  # the chosen one itself
    assert p[("shortcut", (3.0,))] == pytest.approx(0.2254, abs=1e-4)  # FID differences 1, 0.5, 0 over seeds: t = 1.73, 2 dof
    assert tuning.clearly_chosen(df) == []  # shortcut: p = 0.23; taylor: no significant difference either
    one = df[df["seed"] == 100]
    one.attrs["knobs"] = df.attrs["knobs"]
    lone = tuning.summarize(one)[0]
    assert all(math.isnan(r[-1]) for r in lone if r[-1] is not None) and tuning.clearly_chosen(one) == []
    sure = df.assign(fid=df["fid"] + np.where(df["kl_weight"] == 3.0, df["seed"] - 99.0, 0.0))  # kl_weight 3 worse by 2, 2.5, 3: p = 0.013
    sure.attrs["knobs"] = df.attrs["knobs"]
    assert tuning.clearly_chosen(sure) == ["shortcut"]
    assert budget["taylor"] == {"settings": 3, "runs": 9, "cpu_seconds": 90.0}
    assert budget["shortcut"] == {"settings": 2, "runs": 6, "cpu_seconds": 30.0 + 400.0 + 403.0}  # each model once
    # read back part-way (kl_weight 3.0 has run seed 100 only, its FID lower than any mean): no choice yet
    part = df[~((df["kl_weight"] == 3.0) & (df["seed"] > 100))].copy()
    part.loc[part["kl_weight"] == 3.0, "fid"] = 20.0
    part.attrs["knobs"] = df.attrs["knobs"]
    table, chosen, _ = tuning.summarize(part)
    assert chosen == {"taylor": {"order": 1}}
    assert all(math.isnan(row[-1]) for m, k, *row in table if m == "shortcut")


def test_tuning_writes_its_table_and_the_chosen_knobs():
    """The tuning analysis: a table whose rows have the header's columns, p and (n.s.) where the test does not
    separate a setting from the chosen one, and a record with typed knobs, seeds, budget and what waits."""
    import pandas as pd

    from analysis.tuning import tuning

    rows = [{"method": "vanilla", "order": float("nan"), "seed": 100 + i, "B": 16, "N": 16, "n_samples": 1000,
             "fid": 30.0, "token_agreement": 1.0, "eval_seconds": 50.0, "train_seconds": 0.0} for i in range(3)]
    for order, fids in [(0, (40.0, 41.0, 42.5)), (1, (36.0, 37.0, 37.5)), (2, (35.0, 36.5, 38.0))]:
        rows += [{"method": "taylor", "order": float(order), "seed": 100 + i, "B": 4, "N": 16, "n_samples": 1000,
                  "fid": f, "token_agreement": 0.5, "eval_seconds": 10.0, "train_seconds": 0.0}
                 for i, f in enumerate(fids)]
    df = pd.DataFrame(rows)
    df.attrs["knobs"] = ["order"]
    lines, saved = tuning(df, "x", ["taylor"])
    head = next(i for i, line in enumerate(lines) if line.startswith("| method | setting"))
    table = lines[head:head + 5]
    assert {line.count("|") for line in table} == {8}  # 7 columns on every row
    rows_by_order = {line.split(" | ")[1]: line for line in table[2:]}
    assert rows_by_order["order=2"].endswith("| 3 | yes |  |")  # mean 36.5, the lowest
    assert "(n.s.)" in rows_by_order["order=1"] and "(n.s.)" not in rows_by_order["order=0"]  # 0: worse on every seed
    assert saved["chosen"] == {"taylor": {"order": 2}} and saved["seeds"] == [100, 101, 102]
    assert saved["not_chosen_yet"] == []
    assert saved["budget"]["taylor"] == {"settings": 3, "runs": 9, "cpu_seconds": 90.0}
    # the tuning space runs more methods than have run yet: every one of them still waits
    lines, saved = tuning(df, "x", ["taylor", "foca", "shortcut"])
    assert saved["chosen"] == {"taylor": {"order": 2}} and saved["not_chosen_yet"] == ["foca", "shortcut"]
    assert any("the sweep has not reached the method" in line for line in lines)


def test_sample_grids_are_read_from_beside_a_moved_sqlite_store(tmp_path):
    """A committed store cloned elsewhere: the absolute artifact location it recorded is gone, so the report's sample
    sheet reads each run's samples.png from beside the database (artifacts/<experiment>/<run>/artifacts/)."""
    import pandas as pd

    from analysis.runs import download_samples
    from ablate.tracking.mlflow_log import open_client

    db = tmp_path / "moved" / "store.db"
    open_client(f"sqlite:///{db}")
    png = db.parent / "artifacts" / "exp" / "abc123" / "artifacts" / "samples.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(b"\x89PNG")
    df = pd.DataFrame([{"run_id": "abc123", "experiment": "exp", "tracking_uri": f"sqlite:///{db}"},
                       {"run_id": "gone", "experiment": "exp", "tracking_uri": f"sqlite:///{db}"}])
    got = download_samples(df, tmp_path / "dst")
    assert set(got) == {"abc123"} and got["abc123"].read_bytes() == b"\x89PNG"


def test_step_reduction_in_another_unmasking_order_is_its_own_series_off_the_reference_curve():
    """The dashed step-count curve is MaskGIT's order only; Halton-order step reduction gets its own labelled series
    (checked against the former figure once: the curve ran through the Halton points and no label named them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import pandas as pd

    from analysis.figures import _reference_curve

    rows = [("vanilla", 16, 1.0, 34.0, None), ("step_reduction", 4, 4.0, 42.0, "confidence"),
            ("step_reduction", 8, 2.0, 36.0, "confidence"), ("step_reduction", 4, 4.0, 50.0, "halton"),
            ("step_reduction", 8, 2.0, 39.0, "halton")]
    a = pd.DataFrame([{"method": m, "B": b, "speedup_flops": x, "fid": y, "unmasking": u, "color": "#777777",
                       "marker": "v"} for m, b, x, y, u in rows])
    fig, ax = plt.subplots()
    _reference_curve(ax, a, "speedup_flops", "fid", "-", None)
    labels = ax.get_legend_handles_labels()[1]
    plt.close(fig)
    assert "step reduction (unmasking=halton; N = B = 4, 8)" in labels
    curve = next(line for line in ax.get_lines() if line.get_label().startswith("vanilla step-count curve"))
    assert sorted(curve.get_ydata()) == [34.0, 36.0, 42.0]
