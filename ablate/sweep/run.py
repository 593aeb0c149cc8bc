"""`python -m ablate sweep`: validate the space, then run its trials with Ray Tune, logging to MLflow.

Phase 1 runs the vanilla reference (N of the space, every seed) so every later trial can report
speedups against it and find the unaccelerated samples of its seed for its paired measures; phase 2 runs the rest (a grid, or Optuna's multi-objective search). The driver is
the only MLflow writer: a Tune callback opens a child run when a trial starts and closes it
FINISHED or FAILED. `--resume` reopens the newest unfinished sweep of the same space and runs
only the trials without a FINISHED run.
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from dataclasses import asdict
from typing import Optional

from ablate.errors import AblateError
from ablate.store import config_hash
from ablate.sweep.space import SearchSpace, grid_trials
from ablate.sweep.trial import trial_dict
from ablate.tracking.mlflow_log import FAILED, FINISHED, KILLED, Tracker, run_name, runs_dir, trial_key


def _reference_trial(space: SearchSpace, seed: int) -> dict:
    return asdict(space.eval_config("vanilla", space.steps, None, {}, seed))


def print_table(trials: list[dict]) -> None:
    where = trials[0].get("device", "cpu") if trials else "cpu"
    base = trials[0].get("base") if trials else None
    print(f"{len(trials)} trials on {where}" + (f", base {base}" if base else ""))
    print(f"{'run name':<34} {'method':<15} {'N':>3} {'B':>3} {'seed':>4}  knobs")
    for t in trials:
        b = t["budget"] if t["budget"] is not None else "-"
        print(f"{run_name(t):<34} {t['method']:<15} {t['steps']:>3} {b!s:>3} {t['seed']:>4}  {json.dumps(t['knobs'])}")


def _make_logger(tracker: Tracker, parent_id: str, space_hash: str, stats: dict):
    from ray import tune

    class MlflowLogger(tune.Callback):
        """Child run per trial, written from the driver only."""

        def __init__(self):
            self.runs, self.last = {}, {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.runs[trial.trial_id] = tracker.start_child(parent_id, trial_dict(trial.config), space_hash)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = self.last.pop(trial.trial_id)
            payload = json.loads(result["payload"])
            measures = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                        and k in trial_measures(result)}
            tracker.finish_child(self.runs[trial.trial_id], measures, payload["per_step"],
                                 base64.b64decode(payload["grid_png"]), payload["description"])
            stats["trial_seconds"] += float(result.get("eval_seconds", 0.0))
            stats["finished"] += 1
            stats["results"].append((trial_dict(trial.config), measures))

        def on_trial_error(self, iteration, trials, trial, **info):
            error = ""
            path = getattr(trial, "error_file", None)
            if path and os.path.exists(path):
                error = open(path).read()
            tracker.fail_child(self.runs[trial.trial_id], error or "trial failed")
            stats["failed"] += 1

    return MlflowLogger()


RESULT_KEYS_SKIP = {"payload", "time_this_iter_s", "time_total_s", "timestamp", "training_iteration", "pid",
                    "iterations_since_restore", "time_since_restore", "done", "date", "hostname", "node_ip",
                    "experiment_tag", "trial_id", "config", "checkpoint_dir_name", "should_checkpoint"}


def trial_measures(result: dict) -> set:
    return {k for k in result if k not in RESULT_KEYS_SKIP and not k.startswith("config/")}


def check_ray_address(address: Optional[str], timeout: float = 5.0) -> None:
    """Stop with one line when a Ray head given by address does not answer (before anything runs)."""
    import socket

    if not address or address == "auto":
        return
    where = address.split("://", 1)[-1]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise AblateError(f"--ray-address: expected HOST:PORT (or ray://HOST:PORT, or auto), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise AblateError(f"--ray-address {address}: no Ray cluster answers there within {timeout:g} s "
                          f"({e.strerror or e}); start one with `ray start --head`, or leave the option out for a "
                          "local one") from None


def _init_ray(address: Optional[str]):
    import ray

    env = {k: os.environ[k] for k in ("ABLATE_HOME", "ABLATE_STORE", "ABLATE_PROGRESS") if k in os.environ}
    env.setdefault("ABLATE_PROGRESS", "0")
    if ray.is_initialized():
        return
    kw = dict(runtime_env={"env_vars": env}, include_dashboard=False, configure_logging=True, logging_level="WARNING")
    if address:
        ray.init(address=address, **kw)
    else:
        ray.init(num_cpus=os.cpu_count(), **kw)


def _tune(space: SearchSpace, param_space: dict, logger, max_concurrent: Optional[int], name: str, search_alg=None,
          num_samples: int = 1):
    from ray import tune

    from ablate.sweep.trial import trainable

    trainable = tune.with_resources(trainable, space.trial_resources())  # a cuda trial asks for its GPU share
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, num_samples=num_samples,
                                    search_alg=search_alg),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(runs_dir() / "ray_results"),
            callbacks=[logger],
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=1,
        ),
    )
    return tuner.fit()


def run_sweep(space: SearchSpace, experiment: Optional[str] = None, tracking_uri: Optional[str] = None,
              ray_address: Optional[str] = None, max_concurrent: Optional[int] = None, resume: bool = False,
              dry_run: bool = False, tuned: Optional[dict] = None, reuse_tracked: bool = False,
              only_trials: Optional[list[dict]] = None) -> dict:
    """Run a space's trials. `resume`: reopen the newest sweep of this space and run only what it has not finished.
    `reuse_tracked` (what a study does): a grid trial FINISHED in any sweep of the experiment is not run again, and
    when every trial is, nothing is written at all. `tuned`: {method: knobs} a tuning stage chose (grid_trials).
    `only_trials`: run these trials of the space (and the references of their seeds) instead of all of it (a study
    adding seeds to undecided claims)."""
    seed0 = space.eval.seeds[0]
    reference = _reference_trial(space, seed0)
    trials = [asdict(t) for t in grid_trials(space, tuned)] if space.search in ("grid", "halving") else []
    if only_trials is not None:
        wanted = {trial_key(t) for t in only_trials}
        trials = [t for t in trials if trial_key(t) in wanted]
    keys = {trial_key(t) for t in trials}
    for ref in reversed([_reference_trial(space, s) for s in space.eval.seeds]):
        if trial_key(ref) not in keys:
            trials.insert(0, ref)
    if dry_run:
        print_table(trials)
        if space.search == "halving":
            h = space.halving
            print(f"halving: every trial first on {h.rungs[0]} samples, then the best 1/{h.eta:g} of each rung "
                  f"(Pareto rank on {', '.join(o.metric for o in space.objectives)}) on "
                  + ", then ".join(str(n) for n in h.rungs[1:]))
        if space.search == "optuna":
            print(f"+ {space.optuna.num_samples} Optuna trials of {space.optuna.method} "
                  f"(objectives: {', '.join(o.metric + ' ' + o.mode for o in space.objectives)})")
        return {"trials": trials}

    from ablate import pretrained
    from ablate.tracking.mlflow_log import check_tracking, default_tracking_uri

    check_tracking(tracking_uri or default_tracking_uri())  # before anything runs: a server that is not there
    check_ray_address(ray_address)
    pretrained.require(space.dataset)  # before any MLflow run: every trial would fail without the models
    space_dict = space.model_dump(mode="json", by_alias=True)
    if tuned:
        space_dict["tuned"] = tuned
    space_hash = config_hash(space_dict)
    tracker = Tracker(tracking_uri, experiment or space.name)
    scope = None if reuse_tracked and space.search == "grid" else "parent"  # where finished trials are looked up
    if scope is None:
        done = tracker.finished_children(None)
        left = [t for t in trials if trial_key(t) not in done]
        if not left:
            print(f"sweep {space.name}: all {len(trials)} trials already tracked in {tracker.uri} "
                  f"(experiment {tracker.experiment!r}); nothing to run")
            return {"parent_run_id": None, "experiment_id": tracker.experiment_id, "experiment": tracker.experiment,
                    "tracking_uri": tracker.uri, "trials_finished": 0, "trials_failed": 0, "trials_tracked": len(trials),
                    "sweep_seconds": 0.0, "trial_seconds": 0.0}
    parent = tracker.resumable_parent(space_hash) if resume or reuse_tracked else None
    if parent is None:
        parent = tracker.start_parent(space.name, space_hash, space_dict)
        import shlex
        import sys

        from_shell = sys.argv[0].endswith("__main__.py") or sys.argv[0].endswith("migm-ablate")
        tracker.describe_parent(parent, space.name, "python -m ablate " + shlex.join(sys.argv[1:]) if from_shell
                                else f"python -m ablate sweep {space.name}", len(trials))
    else:
        tracker.client.update_run(parent, status="RUNNING")

    def finished():
        return tracker.finished_children(parent if scope == "parent" else None)

    done = finished()
    stats = {"trial_seconds": 0.0, "finished": 0, "failed": 0, "results": []}
    t0 = time.perf_counter()
    try:
        _init_ray(ray_address)
        logger = _make_logger(tracker, parent, space_hash, stats)
        # Phase 1: the vanilla reference, for every seed.
        ref_key = trial_key(reference)
        refs = [reference] + [_reference_trial(space, s) for s in space.eval.seeds[1:]]
        refs = [t for t in refs if trial_key(t) not in done]
        if refs:
            _tune(space, {"trial": _grid(refs)}, logger, max_concurrent, f"{space.name}-reference")
            done = finished()
        if ref_key not in done:
            raise AblateError("sweep: the vanilla reference trial failed; see its FAILED run in MLflow")
        ref_measures = dict(done[ref_key].data.metrics)
        # Phase 2: everything else.
        if space.search == "halving":
            refs_all = {trial_key(_reference_trial(space, s)) for s in space.eval.seeds}
            _halving(space, [t for t in trials if trial_key(t) not in refs_all], tracker, parent, logger,
                     ref_measures, max_concurrent)
            trials = []
        todo = [t for t in trials if trial_key(t) not in done]
        if todo:
            _tune(space, {"trial": _grid(todo), "reference": ref_measures}, logger, max_concurrent,
                  f"{space.name}-trials")
        if space.search == "optuna":
            _optuna(space, tracker, parent, logger, ref_measures, reference, max_concurrent)
    except KeyboardInterrupt:
        tracker.end_parent(parent, KILLED)
        raise
    except Exception:
        tracker.end_parent(parent, FAILED)
        raise
    wall = time.perf_counter() - t0
    summary = {
        "sweep_seconds": wall,
        "trial_seconds": stats["trial_seconds"],
        "overhead_ratio": wall / stats["trial_seconds"] if stats["trial_seconds"] else float("nan"),
        "trials_finished": stats["finished"],
        "trials_failed": stats["failed"],
    }
    tracker.end_parent(parent, FINISHED, summary)
    print(f"sweep {space.name}: {stats['finished']} finished, {stats['failed']} failed in {wall:.0f} s "
          f"(trials' own time {stats['trial_seconds']:.0f} s); MLflow: {tracker.uri} experiment {tracker.experiment!r}")
    if stats["failed"]:
        print(f"sweep {space.name}: {stats['failed']} trial(s) FAILED; each failed run holds its error (tag "
              f"ablate.error, artifact error.txt) in experiment {tracker.experiment!r} of {tracker.uri}")
    print(f"MLflow UI: `python -m ablate ui` opens {tracker.trials_view(parent)} (this sweep's trials, one row each); "
          f"{tracker.compare_view(parent)} draws FID against speedup, one point per setting")
    return {"parent_run_id": parent, "experiment_id": tracker.experiment_id, "experiment": tracker.experiment,
            "tracking_uri": tracker.uri, **summary}


def _grid(todo: list[dict]):
    from ray import tune

    return tune.grid_search(todo)


def _optuna(space: SearchSpace, tracker, parent, logger, ref_measures, reference, max_concurrent):
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    o = space.optuna

    def dist(d):
        if d.choice is not None:
            return tune.choice(d.choice)
        if d.int_range is not None:
            return tune.randint(d.int_range[0], d.int_range[1] + 1)
        lo, hi = d.float_range
        return tune.loguniform(lo, hi) if d.log else tune.uniform(lo, hi)

    base = dict(reference, method=o.method, knobs={})
    finished = [r for r in tracker.finished_children(parent).values() if r.data.tags.get("ablate.method") == o.method]
    remaining = o.num_samples - len(finished)
    if remaining <= 0:
        return
    searcher = OptunaSearch(
        metric=[ob.metric for ob in space.objectives], mode=[ob.mode for ob in space.objectives], seed=o.seed
    )
    param_space = {"base": base, "reference": ref_measures, "budget": dist(o.budget),
                   "knobs": {k: dist(v) for k, v in o.knobs.items()}}
    _tune(space, param_space, logger, max_concurrent, f"{space.name}-optuna", search_alg=searcher,
          num_samples=remaining)


def rung_trial(trial: dict, n: int, measures: str = "all") -> dict:
    """The trial at a rung's sample count, storing its batches so that its larger runs draw only the new ones; a
    lower rung computes only `measures` (what promotion compares), the last rung every measure."""
    return dict(trial, n_samples=n, reuse_samples=True, measures=measures)


def _halving(space: SearchSpace, trials: list[dict], tracker, parent, logger, ref_measures, max_concurrent):
    """Rung by rung: run the rung's trials (those already FINISHED in this sweep are kept, so --resume redoes no
    finished rung), then promote within the rung (sweep/halving.py). A configuration's seeds move together:
    promotion compares seed means of the rung's measures."""
    from ablate.sweep.halving import promote

    h = space.halving
    objectives = [(o.metric, o.mode) for o in space.objectives]

    def config_of(t):  # the configuration a trial belongs to, whatever its seed
        return json.dumps({k: v for k, v in t.items() if k != "seed"}, sort_keys=True, default=str)

    configs: dict[str, list[dict]] = {}
    for t in trials:
        configs.setdefault(config_of(t), []).append(t)
    alive = list(configs)
    promotion = ",".join(m for m, _ in objectives) if h.lower_rungs == "promotion" else "all"

    def finished(rung):  # a lower-rung run of every measure (before `lower_rungs` existed) holds what promotion needs
        done = tracker.finished_children(parent)
        return done | {trial_key(t): r for t in rung if (r := done.get(trial_key(dict(t, measures="all")))) is not None}

    for i, n in enumerate(h.rungs):
        rung = [rung_trial(t, n, promotion if i < len(h.rungs) - 1 else "all") for c in alive for t in configs[c]]
        done = finished(rung)
        todo = [t for t in rung if trial_key(t) not in done]
        print(f"halving rung {i + 1}/{len(h.rungs)}: {len(alive)} configurations x {len(space.eval.seeds)} seeds on "
              f"{n} samples ({len(rung) - len(todo)} already finished)")
        if todo:
            _tune(space, {"trial": _grid(todo), "reference": ref_measures}, logger, max_concurrent,
                  f"{space.name}-rung{i + 1}")
            done = finished(rung)
        if i == len(h.rungs) - 1:
            break
        results = []
        for c in alive:
            runs = [done.get(trial_key(rung_trial(t, n, promotion))) for t in configs[c]]
            runs = [r for r in runs if r is not None]
            if runs:  # a configuration whose every run failed goes no further
                metrics = {m: sum(r.data.metrics.get(m, math.nan) for r in runs) / len(runs) for m, _ in objectives}
                results.append((c, metrics))
        alive = promote(results, objectives, h.eta)
