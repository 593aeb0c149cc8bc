"""Everything the project writes to MLflow goes through `Tracker` (one writer: no SQLite lock races).

Local default: `sqlite:///<runs>/mlflow.db` with artifacts in `<runs>/artifacts` (MLflow 3 refuses a
plain ./mlruns store); `--tracking-uri http://...` points at a team server instead. Experiments are
created once, here, with MlflowClient (never mlflow.set_experiment, whose environment variable
would leak into Ray workers).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import ablate
from ablate.errors import AblateError
from ablate.store import config_hash

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"
# What the UI's shared views show of each trial (besides its method, B and seed).
VIEW_METRICS = ("fid", "speedup_flops", "speedup_wall", "token_agreement", "gflops_per_image")
# MLflow 3 opens an experiment on its GenAI overview unless the experiment says it holds model training runs.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def runs_url(experiment_id: str, host: str = "http://127.0.0.1:5000") -> str:
    """The runs table of an experiment in the MLflow UI: this address opens it whatever the browser remembers."""
    return f"{host.rstrip('/')}/#/experiments/{experiment_id}/runs"


def runs_dir() -> Path:
    return Path(os.environ.get("ABLATE_RUNS", "runs")).expanduser().resolve()


def default_tracking_uri() -> str:
    return f"sqlite:///{runs_dir() / 'mlflow.db'}"


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Stop with one line naming the address when the tracking store does not answer, before anything runs (MLflow's
    own client retries with backoff for minutes, which looks like a frozen sweep)."""
    import urllib.error
    import urllib.request

    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code >= 500:
                raise AblateError(f"tracking uri {uri}: the server answers with HTTP {e.code}; is it an MLflow "
                                  "server, and is it healthy?") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise AblateError(f"tracking uri {uri}: no MLflow server answers there within {timeout:g} s ({reason}); "
                              "start it, or fix --tracking-uri") from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).expanduser().resolve().parent
        existing = next(p for p in [folder, *folder.parents] if p.exists())  # created later, by the first write
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise AblateError(f"tracking uri {uri}: {existing} is not a writable folder")


def open_client(uri: str):
    """An MlflowClient whose SQLite schema is created under a file lock.

    MLflow creates and migrates a fresh SQLite store on first use without any lock, so two processes
    opening a new store at once (a sweep and a `report`, or a test polling it) can both run
    CREATE TABLE and one fails with "table ... already exists". The lock serialises that first use.
    """
    from mlflow.tracking import MlflowClient

    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    import fcntl

    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / (db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # creates and migrates the tables
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return client


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}: params with dotted keys."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def trial_key(trial: dict) -> str:
    """Identity of a trial across invocations (what --resume matches on): ablate.evaluate.trial_key, the one place."""
    from ablate.evaluate import trial_key as key

    return key(trial)


# Version 1 keys (runs logged before KEY_VERSION 2) hashed the trial as given, leaving out fields added later at their
# defaults; the shortcut's also carried the training format, the other learned methods' did not.
_V1_DEFAULTS = {"base": None, "device": "cpu", "amp": "auto", "reuse_samples": False}
LEGACY_FORMAT = 2  # the training format of every version-1 run still in a store (L2P and the residual shortcut came later)


def legacy_trial_key(trial: dict, training_format: Optional[int] = LEGACY_FORMAT) -> str:
    key = {k: v for k, v in trial.items() if not (k in _V1_DEFAULTS and v == _V1_DEFAULTS[k])}
    if trial.get("method") == "shortcut":
        key["training_format"] = training_format
    return config_hash(key)[:16]


def run_trial(run) -> Optional[dict]:
    """The trial (EvalConfig fields, knobs resolved) a logged run describes, from its params; None if they do not
    describe one (a run of another tool)."""
    from dataclasses import fields

    from ablate.evaluate import EvalConfig

    params = run.data.params
    if "method" not in params:
        return None
    names = {f.name for f in fields(EvalConfig)} - {"knobs"}
    trial = {k: parse_param(params[k]) for k in names if k in params}
    trial["knobs"] = {k[len("knobs."):]: parse_param(v) for k, v in params.items() if k.startswith("knobs.")}
    return trial


def parse_param(v: str):
    """Params are strings: 'None' -> None, 'True' -> True, '3' -> 3, '0.5' -> 0.5."""
    if v in ("None", ""):
        return None
    if v in ("True", "False"):
        return v == "True"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def run_key(run, client) -> Optional[str]:
    """The key of a logged trial run under today's derivation. A version-1 run's key is derived again from its
    params; a shortcut run counts only where its version-1 tag proves the training format it was trained at."""
    from ablate.evaluate import KEY_VERSION

    tags = run.data.tags
    if tags.get("ablate.key_version") == str(KEY_VERSION):
        return tags.get("ablate.trial_key")
    try:
        trial = run_trial(run)
        if trial is None:
            return None
        from ablate import methods
        from ablate.evaluate import EvalConfig, trial_identity

        ident = trial_identity(EvalConfig(**trial))
    except Exception:  # noqa: BLE001 - a run this code cannot describe (a removed method or knob) matches nothing
        return None
    cls = methods.get(trial["method"])
    if cls.training_format is not None and cls.training_format != LEGACY_FORMAT:
        return None  # trained at a format older than today's: rerun
    if trial["method"] == "shortcut" and not _v1_tag_proves_format(trial, tags.get("ablate.trial_key"), LEGACY_FORMAT):
        return None
    return config_hash(ident)[:16]


def _v1_tag_proves_format(trial: dict, tag: Optional[str], training_format: int, most_given: int = 4) -> bool:
    """Whether a version-1 shortcut run's key tag is the hash of its trial at `training_format`. Its params hold every
    knob (defaults added after the ones the space gave), so the knobs as given are searched among subsets of up
    to `most_given` of them (a few thousand hashes at most)."""
    from itertools import combinations

    names = sorted(trial["knobs"])
    for k in range(min(most_given, len(names)) + 1):
        for given in combinations(names, k):
            as_given = dict(trial, knobs={n: trial["knobs"][n] for n in given})
            if legacy_trial_key(as_given, training_format) == tag:
                return True
    return False


def run_name(trial: dict) -> str:
    """The trial's readable name (methods.run_name: the one formatter)."""
    from ablate.methods import run_name as name

    return name(trial)


def finished_by_key(client, experiment_id: str, parent_id: Optional[str] = None) -> dict:
    """trial key -> the newest FINISHED trial run of an experiment (of one sweep where `parent_id` is given), keyed by
    today's derivation (`run_key`); reads only."""
    filt = f"tags.`mlflow.parentRunId` = '{parent_id}'" if parent_id else "tags.`ablate.role` = 'trial'"
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filt, max_results=1000, page_token=token)
        runs += page
        token = page.token
        if not token:
            break
    done = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        if run.info.status == FINISHED:
            key = run_key(run, client)
            if key is not None:
                done[key] = run
    return done


def write_shared_views(client, experiment_id: str, parent_id: str) -> tuple[str, str]:
    """Write the sweep's two shared views as experiment tags (`mlflow.sharedViewState.<key>`, what the UI's own
    Share button writes; MLflow 3.17's UI restores these keys of one, checked by tests/test_ui_browser.py):
    - trials: its trials only (`searchFilter` on their parent; sorted by FID, since under the default sort the UI
      nests children under their collapsed parent), chosen columns, every run shown in charts (`SHOW_ALL`, not the
      first 10);
    - compare: the same, grouped by setting (the mean over seeds) and drawn as two scatter charts.
    An address must carry only the key (and compareRunsMode): any search setting in it makes the UI skip the view.
    The spread over seeds is not drawn by MLflow: the report's interactive Pareto figure has the intervals."""
    section = f"ablate-{parent_id[:12]}-speed"
    charts = [{"uuid": f"{section}-{x}", "type": "SCATTER", "runsCountToCompare": 100, "metricSectionId": section,
               "deleted": False, "isGenerated": False, "displayName": f"FID against {name} speedup",
               "xaxis": {"key": x, "type": "METRIC"}, "yaxis": {"key": "fid", "type": "METRIC"}}
              for x, name in (("speedup_flops", "FLOPs"), ("speedup_wall", "wall-clock"))]
    # placeholders that stop the UI from adding a chart of its own for every metric
    charts += [{"uuid": f"{section}-auto-{m}", "type": "BAR", "metricKey": m, "metricSectionId": section,
                "deleted": True, "isGenerated": True, "runsCountToCompare": 10} for m in VIEW_METRICS]
    base = {"selectedColumns": [f"params.`{p}`" for p in ("method", "budget", "seed")]
            + [f"metrics.`{m}`" for m in VIEW_METRICS] + ["tags.`ablate.setting`"],
            "runsHiddenMode": "SHOW_ALL", "orderByKey": "metrics.`fid`", "orderByAsc": True,
            "searchFilter": f"tags.`mlflow.parentRunId` = '{parent_id}'",
            "compareRunCharts": charts, "hideEmptyCharts": False, "isAccordionReordered": True,
            "compareRunSections": [{"uuid": section, "name": "Speed against quality (ablate)", "display": True,
                                    "isReordered": False, "deleted": False, "isGenerated": False}]}
    grouped = base | {"groupBy": {"aggregateFunction": "average",
                                  "groupByKeys": [{"mode": "tag", "groupByData": "ablate.setting"}]},
                      "groupsExpanded": {}, "useGroupedValuesInCharts": True}
    keys = (f"ablate-{parent_id[:16]}-trials", f"ablate-{parent_id[:16]}-compare")
    for key, state in zip(keys, (base, grouped)):
        client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{key}", json.dumps(state))
    return keys


def newest_sweep(client, experiment_id: str) -> Optional[str]:
    """The run id of an experiment's newest sweep (parent run), or None."""
    runs = client.search_runs([experiment_id], filter_string="tags.`ablate.role` = 'sweep'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


class Tracker:
    def __init__(self, tracking_uri: Optional[str], experiment: str):
        import mlflow

        self.uri = tracking_uri or default_tracking_uri()
        mlflow.set_tracking_uri(self.uri)
        self.client = open_client(self.uri)
        self.experiment = experiment
        # one id per sweep invocation: a report must not compare wall clocks timed in different sessions
        self.session = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if self.uri.startswith("sqlite:///"):  # beside the database, so a study's runs and files travel together
                db = Path(self.uri[len("sqlite:///"):]).expanduser().resolve()
                location = (db.parent / "artifacts" / experiment).as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location,
                                                               tags={EXPERIMENT_KIND: MODEL_TRAINING})
        else:
            self.experiment_id = exp.experiment_id
            if exp.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:  # mend a store made before the tag
                self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)

    def runs_url(self, host: str = "http://127.0.0.1:5000") -> str:
        """The experiment's runs table in the MLflow UI (not its GenAI overview)."""
        return runs_url(self.experiment_id, host)

    def trials_view(self, parent_id: str, host: str = "http://127.0.0.1:5000") -> str:
        """The address of a sweep's trials in the MLflow UI, every one a row with its method, B, seed, FID, speedups and
        token agreement, no click needed (a shared view: `shared_views`)."""
        return f"{self.runs_url(host)}?viewStateShareKey={self.shared_views(parent_id)[0]}"

    def compare_view(self, parent_id: str, host: str = "http://127.0.0.1:5000") -> str:
        """The address of the sweep's comparison: FID against FLOPs and against wall-clock speedup, one point per
        setting (the mean over its seeds: trials grouped by their `ablate.setting` tag), every setting drawn."""
        return f"{self.runs_url(host)}?viewStateShareKey={self.shared_views(parent_id)[1]}&compareRunsMode=CHART"

    def shared_views(self, parent_id: str) -> tuple[str, str]:
        return write_shared_views(self.client, self.experiment_id, parent_id)

    def describe_parent(self, run_id: str, space_name: str, command: str, n_trials: int) -> None:
        """The parent run's description (MLflow shows it on the run's page and as a tooltip in the table)."""
        text = "\n".join([
            f"**Sweep `{space_name}`**: {n_trials} trials, one child run each (named method-N-B-knobs-seed).",
            "",
            f"- Command: `{command}`",
            f"- Commit: `{git_commit()}`, ablate {ablate.__version__}",
            f"- Its trials: {self.trials_view(run_id)} (`python -m ablate ui` serves it and opens it): every trial a "
            "row with method, B, seed, FID, speedups and token agreement (how close it stays to the base model).",
            f"- Compare: {self.compare_view(run_id)} opens the chart view, FID against FLOPs and wall-clock speedup, "
            "one point per setting (the mean of its seeds). MLflow draws no interval: the report's interactive "
            "Pareto figure does.",
            "- Figures: this run's artifacts, `report/` (Pareto PNG/PDF and `pareto_fid_vs_speedup_flops.html`, "
            "interactive: method, B and knobs on hover, 95% intervals over seeds as error bars), once the sweep's "
            "report has run.",
        ])
        self.client.set_tag(run_id, "mlflow.note.content", text)

    # -- parent run -------------------------------------------------------------------------
    def resumable_parent(self, space_hash: str) -> Optional[str]:
        """The newest unfinished parent run of the same space, if any."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`ablate.role` = 'sweep' and tags.`ablate.space_hash` = '{space_hash}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def start_parent(self, space_name: str, space_hash: str, space_dict: dict) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"sweep-{space_name}-{time.strftime('%Y%m%d-%H%M%S')}",
            tags=self._common_tags(space_hash) | {"ablate.role": "sweep", "ablate.space": space_name},
        )
        self._log_json(run.info.run_id, space_dict, "space.json")
        return run.info.run_id

    def end_parent(self, run_id: str, status: str = FINISHED, metrics: Optional[dict] = None) -> None:
        if metrics:
            self._log_metrics(run_id, metrics)
        self.client.set_terminated(run_id, status=status)

    def _common_tags(self, config_hash_: str) -> dict:
        return {"ablate.config_hash": config_hash_, "ablate.git_commit": git_commit(),
                "ablate.version": ablate.__version__, "ablate.space_hash": config_hash_}

    # -- child runs -------------------------------------------------------------------------
    def children(self, parent_id: str) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=10000
        )

    def finished_children(self, parent_id: Optional[str]) -> dict[str, object]:
        """trial key -> FINISHED trial run of the sweep `parent_id` (None: of any sweep of this experiment, what a
        study reuses); unfinished leftovers of a killed driver are marked KILLED. Keys are today's (`run_key`), so
        runs logged before it are still found."""
        if parent_id:
            for run in self.children(parent_id):
                if run.info.status == RUNNING:
                    self.client.set_terminated(run.info.run_id, status=KILLED)
        return finished_by_key(self.client, self.experiment_id, parent_id)

    def start_child(self, parent_id: str, trial: dict, space_hash: str) -> str:
        from ablate import methods

        from ablate.evaluate import KEY_VERSION

        tags = {
            "mlflow.parentRunId": parent_id,
            "ablate.trial_key": trial_key(trial),
            "ablate.key_version": str(KEY_VERSION),
            "ablate.config_hash": config_hash(trial),
            "ablate.space_hash": space_hash,
            "ablate.git_commit": git_commit(),
            "ablate.version": ablate.__version__,
            "ablate.method": methods.get(trial["method"]).name,
            "ablate.role": "trial",
            "ablate.session": self.session,
            "ablate.setting": run_name(dict(trial, seed=0)),  # the setting without its seed: the UI groups by it
        }
        run = self.client.create_run(self.experiment_id, run_name=run_name(trial), tags=tags)
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in sorted(flatten(trial).items())]
        for i in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[i : i + 100])
        self._log_json(run.info.run_id, trial, "trial_config.json")
        return run.info.run_id

    def describe_child(self, run_id: str, description: dict) -> None:
        """The trial's full resolved description (evaluate.Setup.describe): every knob with its default, base
        model and weights digest, split, full steps as params; label, colour, marker, rank and package versions
        as tags. The report needs nothing but these, so it draws on a machine that has only this store."""
        from mlflow.entities import Param, RunTag

        have = self.client.get_run(run_id).data.params
        d = dict(description)
        tags = {f"ablate.{k}": str(d.pop(k)) for k in ("label", "color", "marker", "rank")}
        tags |= {f"ablate.versions.{k}": str(v) for k, v in d.pop("versions", {}).items()}
        d["full_steps"] = ",".join(str(x) for x in d.get("full_steps", []))
        d.pop("seed", None)
        params = [Param(k, str(v)) for k, v in sorted(flatten(d).items()) if k not in have]
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def finish_child(self, run_id: str, measures: dict, per_step: dict, grid_png: Optional[bytes],
                     description: Optional[dict] = None) -> None:
        if description:
            self.describe_child(run_id, description)
        self._log_metrics(run_id, measures)
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        # Per-step series under their own names (feature_mse_step, ...): the measure itself stays the mean.
        stepped = [Metric(f"{k}_step", float(v), ts, i) for k, vs in per_step.items() for i, v in enumerate(vs)]
        for i in range(0, len(stepped), 500):
            self.client.log_batch(run_id, metrics=stepped[i : i + 500])
        with tempfile.TemporaryDirectory() as tmp:
            if grid_png:
                (Path(tmp) / "samples.png").write_bytes(grid_png)
                self.client.log_artifact(run_id, str(Path(tmp) / "samples.png"))
            if per_step.get("feature_mse"):
                path = Path(tmp) / "feature_error.png"
                plot_feature_error(per_step, path)
                self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, status=FINISHED)

    def fail_child(self, run_id: str, error: str) -> None:
        first = error.strip().splitlines()[-1][:500] if error.strip() else "unknown error"
        self.client.set_tag(run_id, "ablate.error", first)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "error.txt"
            path.write_text(error)
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, status=FAILED)

    # -- helpers ----------------------------------------------------------------------------
    def _log_metrics(self, run_id: str, metrics: dict) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        ms = [Metric(k, float(v), ts, 0) for k, v in metrics.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
        for i in range(0, len(ms), 500):
            self.client.log_batch(run_id, metrics=ms[i : i + 500])

    def _log_json(self, run_id: str, obj: dict, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(obj, indent=2, default=str))
            self.client.log_artifact(run_id, str(path))


def log_report(rep) -> None:
    """Log a written report's files under `report/` to the parent runs it belongs to (rep.log_targets); a store
    that refuses artifacts is a note, never an error: the files are written."""
    for uri, pid in rep.log_targets:
        try:
            client = open_client(uri)
            for f in rep.files:  # what this report wrote, not whatever else sits in the folder
                client.log_artifact(pid, str(f), artifact_path="report")
            rep.logged_to.append(pid)
        except Exception as e:  # noqa: BLE001
            rep.notes.append(f"could not log the report to parent run {pid} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})")


def plot_feature_error(per_step: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].plot(per_step["feature_mse"], marker="o")
    axes[0].set(xlabel="step", ylabel="MSE to vanilla feature", yscale="log")
    axes[1].plot(per_step["feature_cos"], marker="o")
    axes[1].set(xlabel="step", ylabel="cosine to vanilla feature")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
