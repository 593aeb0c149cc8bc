"""Every method on a tiny model, the identities that pin their meaning down, and the registry's contract."""

import pytest
import torch

from ablate import methods
from ablate.errors import AblateError
from ablate.metrics import cost
from ablate.sampling import MaskGITSampler, SamplerConfig
from ablate.shortcut.model import Shortcut, ShortcutConfig

LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def run(model, method, steps=6, budget=None, **knobs):
    acc = methods.build(method, steps=steps, budget=budget, **knobs)
    sampler = MaskGITSampler(model, SamplerConfig(steps=acc.steps))
    return sampler.sample(LABELS, torch.Generator().manual_seed(0), acc), acc


def test_every_method_fills_every_position(tiny_model):
    for method, cls in methods.REGISTRY.items():
        if cls.learned:
            continue  # trained or fitted first: test_shortcut.py, test_l2p_runs_from_its_fitted_store_entry
        budget = None if method in ("vanilla", "parallel_decode") else 3
        out, acc = run(tiny_model, method, budget=budget)
        assert (out.tokens < tiny_model.mask_id).all(), method
        if acc.variable_steps:  # it may finish before N: the full steps it took are the schedule's first ones
            assert set(out.full_steps) <= acc.full and out.steps_taken <= acc.steps, method
        else:
            assert out.full_steps == sorted(acc.full) and out.steps_taken == acc.steps, method


def test_feature_cache_equals_vanilla_at_full_budget(tiny_model):
    a, _ = run(tiny_model, "vanilla")
    b, _ = run(tiny_model, "feature_cache", budget=6)
    assert torch.equal(a.tokens, b.tokens)


def test_feature_cache_differs_when_skipping(tiny_model):
    a, _ = run(tiny_model, "vanilla")
    b, _ = run(tiny_model, "feature_cache", budget=2)
    assert b.full_steps == [0, 3] and not torch.equal(a.tokens, b.tokens)


def test_taylor_order0_is_feature_cache(tiny_model):
    a, _ = run(tiny_model, "feature_cache", budget=3)
    b, _ = run(tiny_model, "taylor", budget=3, order=0)
    assert torch.equal(a.tokens, b.tokens)


def test_taylor_extrapolates_a_linear_trajectory():
    from ablate.methods.taylor import Taylor

    class Head(torch.nn.Module):
        def head(self, f):
            return f

    t = Taylor(steps=8, budget=3, knobs=Taylor.Knobs(order=1))
    t.begin(None, 1)

    class S:
        def __init__(self, step):
            self.step = step

    f = lambda step: torch.full((1, 2, 3), 1.0 + 0.5 * step)
    t.observe(S(0), None, f(0))
    t.observe(S(3), None, f(3))
    _, pred = t.skip_step(Head(), S(5))
    assert torch.allclose(pred, f(5))


def test_ml_cache_ratio_zero_equals_vanilla(tiny_model):
    a, _ = run(tiny_model, "vanilla")
    b, _ = run(tiny_model, "ml_cache", budget=2, cache_ratio=0.0)
    assert torch.equal(a.tokens, b.tokens)


def test_ml_cache_own_schedule():
    acc = methods.build("ml_cache", steps=20)  # warm-up 30% = 6 steps, then every 5th
    assert sorted(acc.full) == [0, 1, 2, 3, 4, 5, 6, 11, 16] and acc.budget == 9


def test_partial_steps_cost_less(tiny_model):
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps=6))
    for method, knobs in (("ml_cache", {"cache_ratio": 0.7}), ("recap", {})):
        acc = methods.build(method, steps=6, budget=2, **knobs)
        m = cost.count_flops(sampler, LABELS, torch.Generator().manual_seed(0), acc).as_measures()
        assert 0 < m["accel_cost_ratio"] < 1, method


def test_step_reduction_runs_budget_steps(tiny_model):
    out, acc = run(tiny_model, "step_reduction", steps=6, budget=3)
    assert acc.steps == 3 and out.full_steps == [0, 1, 2] and acc.describe()["steps"] == 6


def test_untrained_shortcut_equals_feature_cache(tiny_model):
    """The shortcut's output layer starts at zero, so it outputs its input: feature caching."""
    a, _ = run(tiny_model, "feature_cache", budget=2)
    acc = methods.build("shortcut", steps=6, budget=2)
    acc.net = Shortcut(ShortcutConfig(), tiny_model.tok_emb.weight, tiny_model.position_embedding()).eval()
    out = MaskGITSampler(tiny_model, SamplerConfig(steps=6)).sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert torch.equal(a.tokens, out.tokens)


@pytest.mark.parametrize(
    "method,knobs,field",
    [
        ("taylor", {"order": 3}, "order"),
        ("ml_cache", {"cache_ratio": 1.5}, "cache_ratio"),
        ("recap", {"margin": 0.5}, "margin"),
        ("shortcut", {"n_block": 5}, "n_block"),
        ("feature_cache", {"order": 1}, "knob"),
        ("foca", {"history": 4}, "history"),
        ("foca", {"history": 2}, "history"),  # Taylor order 1 exactly: refused, so it never counts twice
        ("foca", {"history": 1}, "history"),  # feature caching exactly
        ("l2p", {"granularity": "pixel"}, "granularity"),
        ("l2p", {"ridge": -1}, "ridge"),
        ("ml_cache", {"masked_only": "sometimes"}, "masked_only"),
        ("residual_shortcut", {"kl_weight": -1}, "kl_weight"),
        ("residual_shortcut", {"n_block": 5}, "n_block"),
        ("adaptive", {"threshold": -0.1}, "threshold"),
        ("adaptive", {"calib_images": 0}, "calib_images"),
    ],
)
def test_bad_knobs(method, knobs, field):
    with pytest.raises(AblateError, match=f"^{field}:"):
        methods.build(method, steps=8, budget=3, **knobs)


def test_a_knob_that_makes_foca_another_method_names_that_method():
    with pytest.raises(AblateError, match="^history: 2 computes exactly Taylor order 1.*use method taylor with order 1"):
        methods.knobs("foca", {"history": 2})
    with pytest.raises(AblateError, match="^history: 1 computes exactly feature caching"):
        methods.knobs("foca", {"history": 1})


def test_a_schedule_without_skipped_steps_is_refused_where_a_method_learns_them():
    """The residual shortcut trains on its schedule's skipped steps: B = N would crash its training mid-trial."""
    with pytest.raises(AblateError, match="^budget: residual_shortcut learns the skipped steps"):
        methods.build("residual_shortcut", steps=8, budget=8)
    methods.build("residual_shortcut", steps=8, budget=7)


def test_cli_knobs_are_typed_by_the_method():
    """--knob values are strings; the method's Knobs model types them (and refuses what does not fit)."""
    raw = methods.parse_knobs(["n_block=2", "use_tokens=false", "kl_weight=0.5"])
    k = methods.knobs("shortcut", raw)
    assert (k.n_block, k.use_tokens, k.kl_weight) == (2, False, 0.5)
    with pytest.raises(AblateError, match="^n_block: "):
        methods.knobs("shortcut", methods.parse_knobs(["n_block=two"]))
    with pytest.raises(AblateError, match="^--knob: expected NAME=VALUE"):
        methods.parse_knobs(["n_block"])


def test_every_registered_method_describes_itself():
    """Label, colour, marker, help for every knob, and a description that holds every knob with its default."""
    for name, cls in methods.REGISTRY.items():
        assert cls.label and cls.color.startswith("#") and cls.marker, name
        for k, f in cls.Knobs.model_fields.items():
            assert f.description, f"{name}.{k} has no help text"
        budget = None if name in ("vanilla", "ml_cache", "parallel_decode") else 2
        d = methods.build(name, steps=6, budget=budget).describe()
        assert d["method"] == name and d["knobs"] == methods.defaults(name), name


def test_a_method_outside_the_package_by_import_path(tmp_path, monkeypatch):
    """`module:Class` imports a user's module, which registers its method; the knobs validate like ours."""
    (tmp_path / "my_methods.py").write_text(
        "from pydantic import Field\n"
        "from ablate.methods import Knobs, Method\n"
        "class Mine(Method):\n"
        "    name = 'mine_for_test'\n"
        "    class Knobs(Knobs):\n"
        "        scale: float = Field(1.0, gt=0, description='a knob')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cls = methods.get("my_methods:Mine")
        assert methods.source("my_methods:Mine") == "my_methods:Mine" and methods.get("mine_for_test") is cls
        assert methods.build("my_methods:Mine", steps=4, budget=2, scale=2).knobs.scale == 2.0
        with pytest.raises(AblateError, match="^scale: "):
            methods.build("mine_for_test", steps=4, budget=2, scale=-1)
        with pytest.raises(AblateError, match="^method: cannot import 'no_such_module:X'"):
            methods.get("no_such_module:X")
    finally:
        methods.REGISTRY.pop("mine_for_test", None)


def test_ideal_speedup_is_the_cost_model():
    assert methods.build("feature_cache", steps=16, budget=4).ideal_speedup(0.5) == pytest.approx(16 / (4 + 12 * 0.5))
    assert methods.build("step_reduction", steps=16, budget=4).ideal_speedup(0.5) == 4.0  # no cheap steps
    assert methods.build("vanilla", steps=16).ideal_speedup(0.3) == 1.0


def test_training_seed_is_a_knob_of_the_shortcut():
    """Claims can vary the shortcut's training seed as well as the sampling seed: a second seed is a second model."""
    a, b = methods.build("shortcut", steps=16, budget=4), methods.build("shortcut", steps=16, budget=4, train_seed=1)
    assert a.train_cfg.seed == 0 and b.train_cfg.seed == 1 and a.train_cfg != b.train_cfg


class _At:
    def __init__(self, step):
        self.step = step


def _curve(coef, t):
    """A feature curve polynomial in the step index: sum_i coef[i] t^i (coef: list of tensors)."""
    return sum(c * float(t) ** i for i, c in enumerate(coef))


def test_foca_known_answers_with_uneven_gaps():
    """N = 16, B = 3 puts the full steps at 0, 5, 11. On a line both the forecast and the calibrated forecast are
    exact (after two full steps); on a quadratic (after three) the forecast misses by -Δ² c2 and the corrector
    scales that error by exactly (1 + 2ω) / (2 (1 + ω)), ω = Δ / (t_k - t_{k-1})."""
    from ablate.methods.foca import FoCa

    g = torch.Generator().manual_seed(0)
    quad = [torch.randn(2, 3, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    for calibrate in (True, False):
        m = FoCa(steps=16, budget=3, knobs=FoCa.Knobs(calibrate=calibrate))
        assert sorted(m.full) == [0, 5, 11]
        m.begin(None, 1)
        for t in (0, 5):
            m.observe(_At(t), None, _curve(quad[:2], t))
        for t in range(6, 11):
            torch.testing.assert_close(m.forecast(float(t)), _curve(quad[:2], t))
    plain, calib = FoCa(steps=16, budget=3, knobs=FoCa.Knobs(calibrate=False)), FoCa(steps=16, budget=3)
    for m in (plain, calib):
        m.begin(None, 1)
        for t in (0, 5, 11):
            m.observe(_At(t), None, _curve(quad, t))
    for t in range(12, 16):
        dt, w = t - 11, (t - 11) / 6
        err = plain.forecast(float(t)) - _curve(quad, t)
        torch.testing.assert_close(err, -(dt**2) * quad[2])
        torch.testing.assert_close(calib.forecast(float(t)) - _curve(quad, t), err * (1 + 2 * w) / (2 * (1 + w)))


@pytest.mark.parametrize("granularity", ["scalar", "channel"])
def test_l2p_fit_is_exact_on_quadratic_trajectories(granularity):
    """Least squares over trajectories that are quadratic in the step index finds the weights that reproduce
    them exactly (three sources after the third full step, uneven gaps 0, 5, 11); the method predicts with them."""
    from ablate.methods.l2p import L2P, fit

    g = torch.Generator().manual_seed(0)
    n, br, N, L, d = 6, 2, 16, 5, 4
    coef = [torch.randn(n, br, 1, L, d, generator=g) for _ in range(3)]
    t = torch.arange(N, dtype=torch.float32)[None, None, :, None, None]
    feats = sum(c * t**i for i, c in enumerate(coef))
    order = torch.full((n, L), N - 1)  # masked until the last step: every position counts
    m = L2P(steps=16, budget=3, knobs=L2P.Knobs(granularity=granularity, ridge=0.0))
    w = fit([(feats, order)], m.full, 16, history=3, granularity=granularity, ridge=0.0)
    assert set(w) == set(range(16)) - {0, 5, 11}
    assert w[13].shape == ((3,) if granularity == "scalar" else (3, d))
    m.weights = w
    m.begin(None, 1)
    for s in (0, 5, 11):
        m.observe(_At(s), None, feats[:, :, s])

    class Head:
        def head(self, f):
            return f

    for s in range(12, 16):
        _, pred = m.skip_step(Head(), _At(s))
        torch.testing.assert_close(pred, feats[:, :, s], rtol=1e-3, atol=1e-3)


def test_l2p_runs_from_its_fitted_store_entry(tiny_model, tmp_path, monkeypatch):
    """Fitted once on teacher trajectories of the tiny model (a store entry), then served from the store."""
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    logs = []
    acc = methods.build("l2p", steps=6, budget=3, fit_images=8)
    acc.prepare(tiny_model, log=logs.append)
    assert any("fitting L2P" in line for line in logs)
    out = MaskGITSampler(tiny_model, SamplerConfig(steps=6)).sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert (out.tokens < tiny_model.mask_id).all()
    logs.clear()
    again = methods.build("l2p", steps=6, budget=3, fit_images=8)
    again.prepare(tiny_model, log=logs.append)
    assert logs == [] and all(torch.equal(again.weights[t], acc.weights[t]) for t in acc.weights)


def test_ml_cache_masked_only_recomputes_only_masked_positions(tiny_model):
    seen = []
    acc = methods.build("ml_cache", steps=6, budget=2, cache_ratio=0.5, masked_only=True)
    choose = acc.choose

    def spy(state):
        pos = choose(state)
        mask = state.mask.repeat(state.branches, 1)
        seen.append((mask.gather(1, pos), mask.sum(1)))
        return pos

    acc.choose = spy
    MaskGITSampler(tiny_model, SamplerConfig(steps=6)).sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert seen
    for picked_masked, n_masked in seen:
        k = picked_masked.shape[1]
        # every chosen position is masked wherever the row has that many masked positions
        assert (picked_masked.sum(1) == torch.clamp(n_masked, max=k)).all()
    a, _ = run(tiny_model, "ml_cache", budget=2, cache_ratio=0.5)
    b, _ = run(tiny_model, "ml_cache", budget=2, cache_ratio=0.5, masked_only=True)
    assert not torch.equal(a.tokens, b.tokens)


def test_adaptive_policy_extremes_and_calibration(tiny_model, tmp_path, monkeypatch):
    """Threshold 0: every step is full (vanilla's tokens); above 1: only step 0. The calibrated threshold gives
    the calibration batch exactly B full steps, and is a store entry."""
    van, _ = run(tiny_model, "vanilla")
    every, _ = run(tiny_model, "adaptive", budget=3, threshold=0.0)
    assert every.full_steps == list(range(6)) and torch.equal(every.tokens, van.tokens)
    once, _ = run(tiny_model, "adaptive", budget=3, threshold=1.5)
    assert once.full_steps == [0]
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    acc = methods.build("adaptive", steps=6, budget=3, calib_images=6, calib_seed=4)
    acc.follow_sampler(SamplerConfig(steps=6))
    logs = []
    acc.prepare(tiny_model, log=logs.append)
    assert any("calibrating" in line for line in logs) and 0 < acc.threshold < 1
    from ablate.sampling.sampler import balanced_labels

    out = MaskGITSampler(tiny_model, SamplerConfig(steps=6)).sample(
        balanced_labels(6, tiny_model.num_classes), torch.Generator().manual_seed(4), acc)
    assert len(out.full_steps) == 3


def test_dkv_cache_with_a_refresh_every_step_is_vanilla(tiny_model):
    """Known answers: refreshed at every step (or at every step of a full budget) it is vanilla; on a budget of 2 its
    cheap steps recompute exactly the still-masked positions and those committed at the previous step (checked
    against a broken version once: one that left out the previous step's commits failed the spy)."""
    van, _ = run(tiny_model, "vanilla")
    every, acc = run(tiny_model, "dkv_cache", refresh_interval=1)
    assert acc.full == set(range(6)) and torch.equal(every.tokens, van.tokens)
    full_budget, _ = run(tiny_model, "dkv_cache", budget=6)
    assert torch.equal(full_budget.tokens, van.tokens)
    assert sorted(methods.build("dkv_cache", steps=10, refresh_interval=4).full) == [0, 4, 8]
    seen = []
    acc = methods.build("dkv_cache", steps=6, budget=2)
    choose = acc.choose

    def spy(state):
        pos = choose(state)
        need = (state.mask | state.committed_prev).repeat(state.branches, 1)
        picked = torch.zeros_like(need).scatter_(1, pos, True)
        seen.append(bool(torch.equal(picked, need)))
        return pos

    acc.choose = spy
    out = MaskGITSampler(tiny_model, SamplerConfig(steps=6)).sample(LABELS, torch.Generator().manual_seed(0), acc)
    assert seen and all(seen) and (out.tokens < tiny_model.mask_id).all()
    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps=6))
    m = cost.count_flops(sampler, LABELS, torch.Generator().manual_seed(0), methods.build("dkv_cache", steps=6,
                                                                                            budget=2)).as_measures()
    assert 0 < m["accel_cost_ratio"] < 1


def test_the_greedy_schedule_search_climbs_to_a_known_optimum_within_its_budget():
    from ablate.methods.schedule_search import greedy, neighbours

    assert neighbours([0, 4, 8], 12) == [[0, 3, 8], [0, 5, 8], [0, 2, 8], [0, 6, 8], [0, 4, 7], [0, 4, 9],
                                         [0, 4, 6], [0, 4, 10]]
    target = [0, 2, 11]
    score = lambda full: -sum(abs(a - b) for a, b in zip(full, target))  # noqa: E731
    best, value, spent = greedy([0, 4, 8], 12, score, evals=60)
    assert best == target and value == 0 and spent <= 60
    best, value, spent = greedy([0, 4, 8], 12, score, evals=5)  # out of evaluations: the best seen so far
    assert spent <= 5 and value >= score([0, 4, 8]) and len(best) == 3 and best[0] == 0


def test_a_searched_schedule_is_a_store_entry_no_worse_than_the_papers(tiny_model, tmp_path, monkeypatch):
    """Taylor with `schedule: searched`: the search keeps B full steps with step 0, ends no worse on its objective than
    the paper's schedule it starts from, and is searched once (a second method of the same knobs loads it)."""
    from ablate.methods import schedule_search as ss

    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    monkeypatch.setattr(ss, "IMAGES", 12)
    monkeypatch.setattr(ss, "EVALS", 12)
    calls = []
    real = ss.greedy
    monkeypatch.setattr(ss, "greedy", lambda *a, **k: calls.append(1) or real(*a, **k))
    acc = methods.build("taylor", steps=6, budget=3, schedule="searched")
    paper = sorted(acc.full)
    acc.follow_sampler(SamplerConfig(steps=6))
    acc.prepare(tiny_model, log=lambda *_: None)
    assert len(acc.full) == 3 and 0 in acc.full and calls == [1]
    entry = next((tmp_path / "store" / "schedules").glob("*/schedule.json"))
    import json

    saved = json.loads(entry.read_text())
    assert saved["paper"] == paper and saved["searched"] == sorted(acc.full)
    assert saved["agreement"] >= saved["paper_agreement"] and saved["evaluations"] <= 12
    again = methods.build("taylor", steps=6, budget=3, schedule="searched")
    again.follow_sampler(SamplerConfig(steps=6))
    again.prepare(tiny_model, log=lambda *_: None)
    assert again.full == acc.full and calls == [1]  # loaded, not searched again
    assert methods.build("taylor", steps=6, budget=3).describe()["knobs"]["schedule"] == "paper"


def test_parallel_decoding_known_answers(tiny_model):
    """With the schedule's count as floor and no room above it (k_max 1) it is vanilla, and with Taylor on its cheap
    steps it is Taylor; with every token over tau and room for all, one step commits everything; in between it
    commits at least the schedule's count a step and finishes in fewer steps (checked against a broken version once:
    one that ignored tau took all N steps)."""
    van, _ = run(tiny_model, "vanilla")
    same, _ = run(tiny_model, "parallel_decode", k_max=1, floor="schedule")
    assert torch.equal(same.tokens, van.tokens) and same.steps_taken == 6
    tay, _ = run(tiny_model, "taylor", budget=3)
    both, acc = run(tiny_model, "parallel_decode", budget=3, cheap="taylor", k_max=1, floor="schedule")
    assert torch.equal(both.tokens, tay.tokens) and both.full_steps == tay.full_steps
    at_once, _ = run(tiny_model, "parallel_decode", tau=1e-9, k_max=9)
    assert at_once.steps_taken == 1 and (at_once.order == 0).all()
    some, acc = run(tiny_model, "parallel_decode", tau=0.05, k_max=9, floor="schedule")
    counts = MaskGITSampler(tiny_model, SamplerConfig(steps=6)).counts
    assert some.steps_taken < 6 and (some.tokens < tiny_model.mask_id).all()
    for row in some.order:  # every step taken commits at least the schedule's count (where that many were left)
        done = 0
        for step in range(some.steps_taken):
            n = int((row == step).sum())
            assert n >= min(counts[step], 9 - done)
            done += n
    with pytest.raises(AblateError, match="^budget: parallel_decode with cheap: none"):
        methods.build("parallel_decode", steps=6, budget=3)


def test_parallel_decoding_floor_one_and_per_sample_steps(tiny_model):
    """Fast-dLLM's floor: with no token over tau a step commits exactly one, and the last of the N steps whatever is
    left; finished samples leave the batch (the base sees fewer rows) and `generate` charges each sample its own
    steps (checked against a broken version once: one that kept every row in the batch sent 5 rows at every step)."""
    one, _ = run(tiny_model, "parallel_decode", tau=1.0, k_max=9)
    for row in one.order:
        assert [int((row == s).sum()) for s in range(6)] == [1, 1, 1, 1, 1, 4]
    rows = []

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            for k in ("seq_len", "mask_id", "num_classes", "codebook_size"):
                if hasattr(inner, k):
                    setattr(self, k, getattr(inner, k))

        def forward(self, tokens, labels):
            rows.append(tokens.shape[0])
            return self.inner(tokens, labels)

    acc = methods.build("parallel_decode", steps=6, tau=0.066, k_max=9)  # the rows take 3 to 6 steps
    out = MaskGITSampler(Counting(tiny_model), SamplerConfig(steps=6)).generate(LABELS, 0, len(LABELS), acc)
    per_row = out.batches[0][2]
    assert per_row == (out.order.max(1).values + 1).tolist() and len(set(per_row)) > 1
    branches = rows[0] // len(LABELS)
    for step, n in enumerate(rows):  # step k runs only the samples that took more than k steps
        assert n == branches * sum(1 for k in per_row if k > step)


def test_feature_error_counts_only_the_samples_still_decoding(tiny_model):
    """A sample that left the batch has zero features; the per-step error is over the samples still decoding at that
    step, as computed here from the two trajectories (checked against the former code once: it counted the finished
    samples as cosine 0 and failed from the first step where one had finished)."""
    from ablate.metrics.feature_error import feature_error

    sampler = MaskGITSampler(tiny_model, SamplerConfig(steps=6))
    acc = methods.build("parallel_decode", steps=6, tau=0.066, k_max=9)  # the rows take 3 to 6 steps
    got = feature_error(sampler, LABELS, 0, acc)

    def trajectory(method):
        seen = []
        sampler.sample(LABELS, torch.Generator().manual_seed(0), method,
                       hooks=[lambda s, o: seen.append((o.feature, s.mask.any(1)))])
        return seen

    ref, mine = trajectory(None), trajectory(acc)
    assert any(not bool(active.all()) for _, active in mine)  # some samples left before the last step
    for step, ((a, active), (b, _)) in enumerate(zip(mine, ref)):
        rows = active.repeat(2)  # both guidance branches
        cos = float(torch.nn.functional.cosine_similarity(a[rows], b[rows], dim=-1).mean())
        assert got["feature_cos"][step] == pytest.approx(cos, abs=1e-6)
