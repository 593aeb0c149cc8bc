"""What a search strategy would have paid to find a frontier: grid, Optuna and halving replayed offline.

A grid run once on the largest sample count, whose smaller sample counts are prefixes of the same images
(`fid_n500`, `sample_seconds_n500`, ...), knows every answer every strategy could get and what it costs. The
replay walks each strategy over that table in many random orders and seeds and records the hypervolume of the
configurations measured on the largest count so far against the CPU-seconds spent: the same rule as the report,
which draws frontiers from top-rung runs only.

Costs: sampling seconds of the sample count reached (a promoted configuration pays only its new images: the
batches it drew are reused), the rest of each evaluation (scoring; with runs that log their set-up time also
warm-up, FLOPs counting and feature error: `besides_sampling`), and training seconds once per trained model
(the store shares a shortcut between the configurations that use it). The vanilla reference every strategy
runs first is left out of all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from analysis.pareto import hypervolume_2d, pareto_mask


@dataclass
class Config:
    """One configuration of a space (every seed together), as measured by the grid."""

    name: str
    params: dict                       # what a search chooses: method, budget, knobs
    values: dict[int, dict[str, float]]  # sample count -> seed-mean measures scored on that many images
    cost: dict[int, float]             # sample count -> sampling + scoring seconds to reach it from nothing
    train_key: Optional[str] = None    # a trained model it needs (paid once per key)
    train_seconds: float = 0.0


@dataclass
class Trace:
    """Cumulative CPU-seconds after each evaluation, and the top-count configurations known by then."""

    cost: list[float] = field(default_factory=list)
    top: list[tuple[str, ...]] = field(default_factory=list)


class _Ledger:
    def __init__(self, top_n: int):
        self.top_n, self.spent, self.trained, self.at = top_n, 0.0, set(), {}
        self.done: list[str] = []
        self.trace = Trace()

    def run(self, c: Config, n: int, fresh: bool = False) -> None:
        """Bring c to n samples: new images, their scoring, and its model if not trained yet (`fresh`: draw every
        image again, as a search that asks a configuration twice does)."""
        if c.train_key is not None and c.train_key not in self.trained:
            self.trained.add(c.train_key)
            self.spent += c.train_seconds
        have = 0 if fresh else self.at.get(c.name, 0)
        self.spent += c.cost[n] - (c.cost[have] - _scoring(c, have) if have else 0.0)
        self.at[c.name] = n
        if n == self.top_n and c.name not in self.done:
            self.done.append(c.name)
        self.trace.cost.append(self.spent)
        self.trace.top.append(tuple(self.done))


def _scoring(c: Config, n: int) -> float:
    """The scoring part of cost[n] (not reused by a larger run); stored as cost[-n] by `make_config`."""
    return c.cost.get(-n, 0.0)


def make_config(name, params, values, sample_seconds: dict[int, float], score_seconds: dict[int, float],
                train_key=None, train_seconds=0.0) -> Config:
    """cost[n] = sampling seconds of the first n images + scoring seconds of those n (kept apart as cost[-n])."""
    cost = {n: sample_seconds[n] + score_seconds[n] for n in sample_seconds}
    cost |= {-n: score_seconds[n] for n in sample_seconds}
    return Config(name, params, values, cost, train_key, train_seconds)


def replay_grid(configs: Sequence[Config], top_n: int, rng: np.random.Generator) -> Trace:
    led = _Ledger(top_n)
    for i in rng.permutation(len(configs)):
        led.run(configs[i], top_n)
    return led.trace


def replay_halving(configs: Sequence[Config], rungs: Sequence[int], eta: float,
                   objectives: Sequence[tuple[str, str]], rng: np.random.Generator) -> Trace:
    """The sweep's halving: every configuration on the first rung, promotion within a rung by the sweep's own
    rule (sweep/halving.promote on that rung's measures), the rest on the next rung."""
    from ablate.sweep.halving import promote

    led = _Ledger(rungs[-1])
    by_name = {c.name: c for c in configs}
    alive = [configs[i].name for i in rng.permutation(len(configs))]
    for i, n in enumerate(rungs):
        for name in alive:
            led.run(by_name[name], n)
        if i < len(rungs) - 1:
            alive = promote([(a, by_name[a].values[n]) for a in alive], list(objectives), eta)
            alive = [alive[j] for j in rng.permutation(len(alive))]
    return led.trace


def replay_optuna(configs: Sequence[Config], top_n: int, objectives: Sequence[tuple[str, str]], n_trials: int,
                  seed: int, sampler: str = "nsga2") -> Trace:
    """Optuna ask-and-tell over the space's own choices, every asked configuration run on the full sample count.
    Define-by-run: the method first, then its budget and each knob it varies (categorical, named per method as
    a live sweep of one method would), choosing among the values still held by the configurations that match
    what was picked so far, so that a grid of unlike rows (a method with its own ablations) is searched without
    asking for combinations it does not hold. A configuration asked twice is run twice, as a live sweep would."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    make = {"nsga2": optuna.samplers.NSGAIISampler, "tpe": optuna.samplers.TPESampler}[sampler]
    study = optuna.create_study(directions=["minimize" if m == "min" else "maximize" for _, m in objectives],
                                sampler=make(seed=seed))
    led = _Ledger(top_n)
    while len(led.trace.cost) < n_trials:
        trial = study.ask()
        c = _ask(trial, configs)
        led.run(c, top_n, fresh=True)
        study.tell(trial, [c.values[top_n][m] for m, _ in objectives])
    return led.trace


def _ask(trial, configs: Sequence[Config]) -> Config:
    """One configuration, one choice at a time; a choice's name carries what its set of values depends on."""
    pool = list(configs)
    method = _pick(trial, "method", pool, "method")
    pool = [c for c in pool if c.params["method"] == method]
    keys = ["budget"] + sorted({k for c in pool for k in c.params} - {"method", "budget"})
    full = {k: _values(pool, k) for k in keys}  # the method's own choice sets, before any narrowing
    for k in keys:
        vals = _values(pool, k)
        if len(vals) == 1:
            continue
        # the method's own choice set keeps the plain name (a product grid: one distribution per knob); a set
        # narrowed by earlier picks gets its own name (Optuna fixes one distribution per name)
        name = f"{method}.{k}" if vals == full[k] else f"{method}.{k} | " + ",".join(map(repr, vals))
        v = trial.suggest_categorical(name, vals)
        pool = [c for c in pool if _hashable(c.params.get(k)) == v]
    return pool[0]


def _values(configs, key) -> list:
    return sorted({_hashable(c.params.get(key)) for c in configs}, key=repr)


def _pick(trial, name, pool, key):
    vals = _values(pool, key)
    return vals[0] if len(vals) == 1 else trial.suggest_categorical(name, vals)


def _hashable(v):
    return v if not isinstance(v, float) or not math.isnan(v) else None


def hv_curve(trace: Trace, configs: Sequence[Config], top_n: int, objectives: Sequence[tuple[str, str]],
             ref: Sequence[float], grid_seconds: Sequence[float]) -> np.ndarray:
    """Hypervolume of the configurations known on the top count, at each of grid_seconds (step function)."""
    hv_at_event, cache = [], {}
    for names in trace.top:
        if names not in cache:
            cache[names] = hypervolume(configs, names, top_n, objectives, ref)
        hv_at_event.append(cache[names])
    costs = np.array(trace.cost)
    out = np.zeros(len(grid_seconds))
    for j, t in enumerate(grid_seconds):
        k = np.searchsorted(costs, t, side="right") - 1
        out[j] = hv_at_event[k] if k >= 0 else 0.0
    return out


def hypervolume(configs: Sequence[Config], names: Sequence[str], top_n: int, objectives, ref) -> float:
    """Hypervolume of the named configurations on the top count (0 for none)."""
    by_name = {c.name: c for c in configs}
    pts = np.array([[by_name[n].values[top_n][m] for m, _ in objectives] for n in names])
    return hypervolume_2d(pts, ref, [d for _, d in objectives]) if len(pts) else 0.0


def frontier(configs: Sequence[Config], names: Sequence[str], top_n: int,
             objectives: Sequence[tuple[str, str]]) -> set[str]:
    """Names of the non-dominated configurations among `names`, on the top count."""
    names = list(names)
    if not names:
        return set()
    by_name = {c.name: c for c in configs}
    pts = np.array([[by_name[n].values[top_n][m] for m, _ in objectives] for n in names])
    mask = pareto_mask(pts, [d for _, d in objectives])
    return {n for n, keep in zip(names, mask) if keep}


def seconds_to_reach(trace: Trace, configs, top_n, objectives, ref, target: float) -> float:
    """CPU-seconds at which the hypervolume first reaches `target` (inf if never)."""
    curve = hv_curve(trace, configs, top_n, objectives, ref, trace.cost)
    hit = np.nonzero(curve >= target - 1e-12)[0]
    return float(trace.cost[hit[0]]) if len(hit) else math.inf


def params_key(params: dict) -> tuple:
    """A configuration's identity across experiments (knob values as floats where numeric: 1 and 1.0 agree)."""
    norm = {k: float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else v
            for k, v in params.items() if not is_missing(v)}
    return tuple(sorted(norm.items()))


def besides_sampling(df):
    """Each run's seconds besides sampling and set-up: scoring, and for runs that log their set-up time
    (`setup_seconds`) also warm-up, decoding, FLOPs counting and feature error (eval - set-up - sampling), which is
    what a live sweep spends on a run besides its images and its training. Older runs: scoring only."""
    q = df["quality_seconds"].astype(float)
    if "setup_seconds" not in df:
        return q
    rest = df["eval_seconds"].astype(float) - df["setup_seconds"].astype(float) - df["sample_seconds"].astype(float)
    return rest.where(df["setup_seconds"].notna(), q)


def live_sweep(df, knobs, objectives, configs, top, seeds=None) -> dict:
    """What a live sweep spent and found, and whether its measures are the grid's (same seeds, same images).

    The grid's values are seed means, so a live configuration is compared at a count only once its runs there
    cover the grid's seeds (`seeds`; repeats of a seed count once); other (configuration, count) pairs are
    counted in `not_compared`. Training is charged once per trained model, as the replay charges it (keyed by
    method and logged training time; a model served from the store logs its original time)."""
    df = df[df["method"] != "vanilla"]
    by_key = {params_key(c.params): c for c in configs}
    cpu = float(df["sample_seconds"].astype(float).sum() + besides_sampling(df).sum())
    if "train_seconds" in df:
        trained = {(m, round(float(s), 3)) for m, s in zip(df["method"], df["train_seconds"]) if float(s) > 0}
        cpu += sum(s for _, s in trained)
    found, unknown, at = {}, [], {}
    for _, r in df.iterrows():
        params = {"method": r["method"], "budget": int(r["B"])} | {k: r[k] for k in knobs if k in r}
        c = by_key.get(params_key(params))
        if c is None:
            unknown.append(str(params))
            continue
        n = int(r["n_samples"])
        at.setdefault((c.name, n), {})[int(r["seed"]) if "seed" in r else 0] = r
        if n == top:
            found[c.name] = c
    by_name = {c.name: c for c in configs}
    deltas, not_compared = [], 0
    for (name, n), per_seed in at.items():
        c = by_name[name]
        if n not in c.values or (seeds is not None and sorted(per_seed) != sorted(seeds)):
            not_compared += 1
            continue
        for m, _ in objectives:  # the grid's number for this count: its prefix column, or its own value at top
            live = float(np.mean([float(r[m]) for r in per_seed.values()]))
            deltas.append(abs(live - c.values[n][m]))
    return {"cpu_seconds": cpu, "runs": int(len(df)), "found": sorted(found), "unknown": unknown,
            "max_abs_diff_vs_grid": max(deltas) if deltas else math.nan, "compared": len(deltas),
            "not_compared": not_compared}


def is_missing(v) -> bool:
    """An absent knob value (None or NaN, as a table of unlike rows holds it)."""
    return v is None or (isinstance(v, float) and math.isnan(v))
