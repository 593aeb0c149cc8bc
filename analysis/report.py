"""`python -m ablate report`: runs -> every figure and table in one folder (the CLI then logs it to the sweep's
parent run through ablate.tracking: analysis only reads MLflow).

A missing piece (no shortcut variants for the ablation, a measure nobody logged) skips that one
figure with a one-line note instead of failing the rest; loading errors (unknown experiment, nothing
FINISHED) stop with an AblateError.
"""

from __future__ import annotations

import json
import math
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from ablate.errors import AblateError
from analysis import figures, tables
from analysis.labels import add_labels
from analysis.runs import download_samples, load_runs, newest_parents, resolve_uri


@dataclass
class Report:
    out: Path
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # shown on top of the README: what not to read into it
    log_targets: list = field(default_factory=list)  # (tracking_uri, parent run id) the folder belongs to
    logged_to: list = field(default_factory=list)


def default_out(experiments: Iterable[str]) -> Path:
    return Path("results") / "+".join(experiments)


def command(experiments, tracking_uris, parents, out, budget) -> str:
    args = ["python", "-m", "ablate", "report"]
    for e in experiments:
        args += ["--experiment", e]
    for u in tracking_uris:
        if u:
            args += ["--tracking-uri", u]
    for p in parents:
        args += ["--parent", p]
    if out is not None:
        args += ["--out", str(out)]
    if budget is not None:
        args += ["--budget", str(budget)]
    return " ".join(shlex.quote(a) for a in args)


def report(experiments: Iterable[str] = (), tracking_uris: Iterable[Optional[str]] = (None,),
           parents: Iterable[str] = (), out: Optional[Path] = None, budget: Optional[int] = None,
           hv_refs: Optional[dict] = None, echo: Callable[[str], None] = lambda s: None,
           index_name: str = "README.md", command_text: Optional[str] = None, title: Optional[str] = None) -> Report:
    """Writes every figure (PNG + PDF) and table (Markdown + LaTeX) to `out`; returns what it wrote and the
    parent runs it belongs to (the parents given, else the newest sweep behind each experiment).

    out defaults to results/<experiment>[+<experiment>...]. A study writes its index as `report.md` beside its own
    README (`index_name`), with the study's command (`command_text`) and title.
    """
    experiments, parents = list(experiments), list(parents)
    tracking_uris = list(tracking_uris) or [None]
    df = add_labels(load_runs(experiments, tracking_uris, parents))
    rep = Report(Path(out) if out is not None else default_out(dict.fromkeys(df["experiment"])))
    rep.out.mkdir(parents=True, exist_ok=True)
    notes = rep.notes
    warning = tables.wall_warning(df)
    if warning:
        rep.warnings.append(warning)
        echo(f"report: caution: {warning}")
    echo(f"report: {len(df)} finished trial runs from {', '.join(dict.fromkeys(df['source']))}")

    def attempt(name, fn, *a, **kw):
        try:
            rep.files += fn(*a, **kw)
        except AblateError as e:
            notes.append(f"{name} skipped: {e}")

    # the store's address is this machine's, not the runs': left out, so the file regenerates anywhere
    csv = df.drop(columns=["feature_mse_steps", "feature_cos_steps", "method_rank", "color", "tracking_uri"])
    csv.to_csv(rep.out / "runs.csv", index=False)
    rep.files.append(rep.out / "runs.csv")

    for speed in ("speedup_wall", "speedup_flops"):
        attempt(f"fid vs {speed} figure", figures.speed_vs_quality, df, rep.out, speed=speed, quality="fid",
                notes=notes, stem=f"pareto_fid_vs_{speed}")
    attempt("interactive fid vs speedup_flops figure", figures.interactive_pareto, df, rep.out)
    attempt("ablation figure", figures.ablations, df, rep.out, notes=notes)
    try:
        b = figures.pick_budget(df, budget)
    except AblateError as e:
        if budget is not None:
            raise
        b = None
        notes.append(f"feature-error figure and sample sheet skipped: {e}")
    if b is not None:
        attempt("feature-error figure", figures.feature_error, df, rep.out, b, notes=notes)
        with tempfile.TemporaryDirectory() as tmp:
            images = download_samples(_sheet_runs(df, b), Path(tmp))
            attempt("sample sheet", figures.sample_sheet, df, images, rep.out, b)

    written = {}
    written["summary"] = tables.summary(df)
    try:
        pareto_table, pareto_data = tables.pareto(df, refs=hv_refs, notes=notes)
        written["pareto"] = pareto_table
        (rep.out / "pareto.json").write_text(json.dumps(_finite(pareto_data), indent=1) + "\n")
        rep.files.append(rep.out / "pareto.json")
    except AblateError as e:
        notes.append(f"pareto table skipped: {e}")
    abl = tables.ablation(df)
    if abl is not None:
        written["ablation"] = abl
    for name, t in written.items():
        (rep.out / f"{name}.md").write_text(t.markdown())
        (rep.out / f"{name}.tex").write_text(t.latex())
        rep.files += [rep.out / f"{name}.md", rep.out / f"{name}.tex"]

    cmd = command_text or command(experiments, [u for u in tracking_uris if u], parents, out, budget)
    (rep.out / index_name).write_text(_index(rep, written, cmd, title))
    rep.files.append(rep.out / index_name)

    if parents:
        uri_of = dict(zip(df["parent_run_id"], df["tracking_uri"]))  # the store each parent lives in
        rep.log_targets = [(uri_of.get(p, resolve_uri(tracking_uris[0])), p) for p in parents]
    else:
        rep.log_targets = newest_parents(df)
    return rep


def _finite(obj):
    """JSON without NaN (not valid JSON): a hypervolume that could not be computed becomes null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return float(obj) if hasattr(obj, "dtype") else obj


def _sheet_runs(df, b):
    seed = df["seed"].min()
    return df[(df["seed"] == seed) & ((df["B"] == b) | (df["method"] == "vanilla"))]


def _index(rep: Report, written: dict, cmd: str, title: Optional[str] = None) -> str:
    """README of the folder: every figure inline and every table, with the command that remakes them."""
    lines = [f"# Report: {title or rep.out.name}", "", f"Regenerate: `{cmd}`", ""]
    lines += [f"**Caution:** {w}" for w in rep.warnings] + ([""] if rep.warnings else [])
    for f in rep.files:
        if f.suffix == ".png":
            html = f.with_suffix(".html")
            more = f", [interactive]({html.name})" if html in rep.files else ""
            lines += [f"![{f.stem}]({f.name}) ([PDF]({f.stem}.pdf){more})", ""]
    for name, t in written.items():
        lines += [f"## {name.capitalize()} table ([LaTeX]({name}.tex))", "", t.markdown(), ""]
    if rep.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    return "\n".join(lines)
