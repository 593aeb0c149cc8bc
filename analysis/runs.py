"""MLflow runs -> one tidy pandas DataFrame, one row per FINISHED trial run.

Columns: source (experiment, or `experiment@uri` when the same name comes from two stores),
tracking_uri, experiment, experiment_id, parent_run_id, run_id, run_name, start_time, method,
N (steps), B (full steps; N for vanilla), seed, one column per knob (as the run logged it: every knob with
its default), the method's look (`label`, `color`, `marker`, `rank` from its tags), `full_steps`, every
logged metric, and the per-step feature errors as lists (`feature_mse_steps`, `feature_cos_steps`).
Analysis reads only this: no method code is imported, so any past sweep from any store can be re-plotted
on a machine that has only the store.

Runs logged before trials described themselves (ablate 0.1) lack the knobs they left at their defaults and
the method's look: they still report, named by their method, in a colour of a fixed palette, with only the
knobs they logged (documented in docs/architecture.md).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import pandas as pd

from ablate.errors import AblateError
from ablate.tracking.mlflow_log import parse_param  # params are strings: the one parser

STEPPED = ("feature_mse", "feature_cos")
SAMPLER = ("cfg_w", "r_temp", "sm_temp", "unmasking")  # sampler settings: a study may vary them as it varies knobs
META = ("source", "tracking_uri", "experiment", "experiment_id", "parent_run_id", "run_id", "run_name",
        "start_time", "method", "N", "B", "seed")


@functools.lru_cache(maxsize=None)
def _client(uri: str):
    from ablate.tracking.mlflow_log import check_tracking, open_client

    if uri.startswith(("http://", "https://")):
        check_tracking(uri)  # one line now, not minutes of the client's retries
    return open_client(uri)


def resolve_uri(uri: Optional[str]) -> str:
    from ablate.tracking.mlflow_log import default_tracking_uri

    return uri or default_tracking_uri()


def split_stepped(history: list) -> tuple[Optional[float], list[float]]:
    """(mean, per-step values) of a stepped metric from its MLflow history.

    The Tracker logs the measure (the mean over steps) and the per-step values under one name, both
    at step 0, so step 0 may hold two values. Then the mean is sum/len of everything logged (it is
    the mean of the per-step values), and the per-step value at 0 is the other one.
    """
    if not history:
        return None, []
    by_step: dict[int, list[float]] = {}
    for m in sorted(history, key=lambda m: (m.step, m.timestamp)):
        by_step.setdefault(int(m.step), []).append(float(m.value))
    values = [v for vs in by_step.values() for v in vs]
    mean = sum(values) / len(values)
    if len(by_step.get(0, [])) == 2 and all(len(vs) == 1 for s, vs in by_step.items() if s):
        pair = by_step[0]
        pair.remove(min(pair, key=lambda v: abs(v - mean)))
    steps = [by_step[s][-1] for s in sorted(by_step)]
    if len(steps) == len(values):  # no mean among them
        mean = sum(steps) / len(steps)
    return mean, steps


def _experiments(client, names: Sequence[str]) -> dict[str, object]:
    out = {}
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage == "active":
            out[name] = exp
    return out


def _search(client, exp_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([exp_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _row(run, uri: str, exp, with_steps: bool, client) -> dict:
    params = {k: parse_param(v) for k, v in run.data.params.items()}
    tags = run.data.tags
    method = tags.get("ablate.method") or params.get("method")
    n = params.get("steps")
    b = params.get("budget")
    if method == "vanilla" and b is None:
        b = n
    row = {
        "tracking_uri": uri, "experiment": exp.name, "experiment_id": exp.experiment_id,
        "parent_run_id": run.data.tags.get("mlflow.parentRunId"), "run_id": run.info.run_id,
        "run_name": run.info.run_name, "start_time": run.info.start_time, "method": method,
        "N": n, "B": b if b is not None else math.nan, "seed": params.get("seed", 0),
        "trial_key": run.data.tags.get("ablate.trial_key", run.info.run_id),
        # the sweep invocation that timed it; runs logged before the tag existed fall back to their commit
        "session": tags.get("ablate.session") or f"commit {tags.get('ablate.git_commit', '?')[:12]}",
        **{k: params.get(k) for k in ("dataset", "extractor", "reference", "n_samples", "base", "device", "amp",
                                      *SAMPLER)},
    }
    row.update(label=tags.get("ablate.label", method), color=tags.get("ablate.color"), marker=tags.get("ablate.marker"),
               rank=float(tags.get("ablate.rank", 100)),
               full_steps=[int(x) for x in str(params.get("full_steps") or "").split(",") if x.strip()])
    knobs = {k[len("knobs."):]: v for k, v in params.items() if k.startswith("knobs.")}
    row.update(knobs)
    row["_knobs"] = sorted(knobs)
    row.update({k: v for k, v in run.data.metrics.items() if not k.endswith("_step")})
    for name in STEPPED:
        if with_steps and f"{name}_step" in run.data.metrics:
            history = client.get_metric_history(run.info.run_id, f"{name}_step")
            row[f"{name}_steps"] = [float(m.value) for m in sorted(history, key=lambda m: m.step)]
        elif with_steps and name in run.data.metrics:  # runs logged before the series had its own name
            mean, steps = split_stepped(client.get_metric_history(run.info.run_id, name))
            row[name], row[f"{name}_steps"] = mean, steps
        else:
            row[f"{name}_steps"] = None
    return row


def load_runs(experiments: Iterable[str] = (), tracking_uris: Iterable[Optional[str]] = (None,),
              parents: Iterable[str] = (), with_steps: bool = True, every_run: bool = False) -> pd.DataFrame:
    """FINISHED trial runs of the named experiments and/or sweep parent runs, from every given store.

    `every_run`: also lower rungs and repeats of a trial (what a sweep spent), not only what tables compare.

    Each experiment is looked up in every tracking URI and what is found is combined; a parent run
    narrows its experiment to that sweep. A name found in no store, a store holding none of the
    names, or nothing FINISHED raises a one-line AblateError. A trial run twice within one
    experiment (the same params: every setting of the trial, knobs resolved) keeps its newest FINISHED run.
    """
    names = list(dict.fromkeys(experiments))
    uris = list(dict.fromkeys(resolve_uri(u) for u in (list(tracking_uris) or [None])))
    parents = list(dict.fromkeys(parents))
    if not names and not parents:
        raise AblateError("experiment: name at least one experiment or parent run")
    rows, found, seen_parents, counts = [], set(), set(), {}
    for uri in uris:
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
            raise AblateError(f"tracking uri {uri}: no MLflow database there (run a sweep first, or pass "
                              "--tracking-uri)")
        client = _client(uri)
        targets = {e.experiment_id: (e, set()) for e in _experiments(client, names).values()}
        for pid in parents:
            try:
                exp = client.get_experiment(client.get_run(pid).info.experiment_id)
            except Exception:
                continue
            seen_parents.add(pid)
            targets.setdefault(exp.experiment_id, (exp, set()))[1].add(pid)
        if not targets and names and len(uris) > 1:
            raise AblateError(f"tracking uri {uri}: holds none of the experiments {', '.join(names)}")
        for exp, pids in targets.values():
            found.add(exp.name)
            filt = "tags.`ablate.role` = 'trial'"
            runs = _search(client, exp.experiment_id, filt)
            if pids:
                runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in pids]
            for r in runs:
                counts[r.info.status] = counts.get(r.info.status, 0) + 1
            done = sorted((r for r in runs if r.info.status == "FINISHED"), key=lambda r: r.info.start_time or 0)
            newest = {r.info.run_id if every_run else _same_trial(r): r for r in done}
            rows += [_row(r, uri, exp, with_steps, client) for r in newest.values()]
    missing = [n for n in names if n not in found]
    if missing:
        where = uris[0] if len(uris) == 1 else f"any of {', '.join(uris)}"
        raise AblateError(f"experiment: no experiment named {missing[0]!r} in {where}")
    lost = [p for p in parents if p not in seen_parents]
    if lost:
        raise AblateError(f"parent run: no run {lost[0]!r} in {', '.join(uris)}")
    if not rows:
        what = ", ".join(repr(n) for n in names) or ", ".join(f"run {p}" for p in parents)
        other = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no trial runs at all"
        raise AblateError(f"experiment {what}: no FINISHED trial runs ({other})")
    knob_names = sorted({k for r in rows for k in r.pop("_knobs")})
    df = pd.DataFrame(rows)
    from ablate.store import ADDED_LATER

    for col, implied in ADDED_LATER.items():  # runs logged before a setting existed ran at its implied value
        if col in df:
            df[col] = df[col].where(df[col].notna(), implied)
    df["source"] = _source_labels(df)
    df["B"] = pd.to_numeric(df["B"], errors="coerce")
    # A halving sweep also holds its trials' runs on fewer samples (lower rungs): FID is biased by the sample
    # count, so tables and frontiers compare only runs on an experiment's largest count.
    n = pd.to_numeric(df.get("n_samples"), errors="coerce") if "n_samples" in df else None
    lower = 0
    if n is not None and not every_run:
        low = n < n.groupby(df["source"]).transform("max")
        lower = int(low.sum())
        df = df[~low]
    cols = [c for c in META if c in df] + [c for c in df if c not in META]
    df = df[cols].sort_values(["source", "method", "B", "seed"], kind="stable").reset_index(drop=True)
    df.attrs["knobs"] = knob_names
    df.attrs["lower_rung_runs"] = lower
    return df


def _same_trial(run) -> str:
    """What makes two logged runs one trial, read without method code: their params (every setting of the trial and
    every knob with its default, as each run logs them), whichever version of trial keys tagged them."""
    from ablate.store import ADDED_LATER

    return repr(sorted((k, v) for k, v in run.data.params.items() if ADDED_LATER.get(k.split(".")[-1]) != v))


def _source_labels(df: pd.DataFrame) -> pd.Series:
    """The experiment name, qualified by its store where one name comes from several stores."""
    per_name = df.groupby("experiment")["tracking_uri"].nunique()
    uris = list(dict.fromkeys(df["tracking_uri"]))
    short = {u: _short_uri(u) for u in uris}
    if len(set(short.values())) < len(uris):  # two stores in folders of the same name: say it in full
        short = {u: u for u in uris}
    return df.apply(lambda r: r["experiment"] if per_name[r["experiment"]] == 1
                    else f"{r['experiment']}@{short[r['tracking_uri']]}", axis=1)


def _short_uri(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        p = Path(uri[len("sqlite:///"):])
        return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
    return uri.split("://", 1)[-1].rstrip("/")


def require(df: pd.DataFrame, measures: Sequence[str], what: str) -> pd.DataFrame:
    """The rows that have every measure; AblateError naming the measure when no row has it."""
    for m in measures:
        if m not in df or df[m].isna().all():
            raise AblateError(f"measure {m!r}: no finished run has it, so {what} cannot be drawn")
    return df.dropna(subset=list(measures))


def missing_note(df: pd.DataFrame, measures: Sequence[str], what: str) -> Optional[str]:
    """One line naming the runs left out of `what` for lack of a measure, or None.

    step_reduction has no per-step counterpart of vanilla, so its lack of feature errors is expected.
    """
    lacking = df[pd.concat([df[m].isna() if m in df else pd.Series(True, index=df.index) for m in measures],
                           axis=1).any(axis=1)]
    if set(measures) & set(STEPPED):
        lacking = lacking[lacking["method"] != "step_reduction"]
    if lacking.empty:
        return None
    names = ", ".join(lacking["run_name"].astype(str).head(4)) + (" ..." if len(lacking) > 4 else "")
    return f"{what}: {len(lacking)} run(s) lack {' or '.join(measures)} and are left out ({names})"


def newest_parents(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(tracking_uri, parent_run_id) of the newest sweep behind each source's runs."""
    out = []
    for _, g in df.groupby("source", sort=False):
        g = g.dropna(subset=["parent_run_id"])
        if len(g):
            r = g.sort_values("start_time").iloc[-1]
            out.append((r["tracking_uri"], r["parent_run_id"]))
    return out


def download_samples(df: pd.DataFrame, dst: Path) -> dict[str, Path]:
    """run_id -> local copy of its samples.png (runs without one are left out). A SQLite store keeps its artifacts
    beside it (`artifacts/<experiment>/<run>/artifacts/`); where the absolute location it recorded is gone (a
    committed store, cloned elsewhere), they are read from beside the database."""
    out = {}
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run is noise
    for _, r in df.iterrows():
        folder = Path(dst) / r["run_id"]
        folder.mkdir(parents=True, exist_ok=True)
        try:
            client = _client(r["tracking_uri"])
            out[r["run_id"]] = Path(client.download_artifacts(r["run_id"], "samples.png", str(folder)))
            continue
        except Exception:
            pass
        uri = str(r["tracking_uri"])
        if uri.startswith("sqlite:///"):
            beside = (Path(uri[len("sqlite:///"):]).parent / "artifacts" / str(r["experiment"]) / r["run_id"]
                      / "artifacts" / "samples.png")
            if beside.is_file():
                out[r["run_id"]] = beside
    return out
