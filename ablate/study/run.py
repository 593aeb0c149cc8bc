"""`python -m ablate study NAME`: run a study end to end and write what it found, or `--check` that its committed
outputs regenerate from its tracked runs alone.

Stages run in order; a stage `tuned_by` a tuning stage runs every method at the knobs that stage chose (read from its
runs, so nothing is copied by hand). A study never runs a trial its store already tracked. Then each stage's
analyses write into the study's folder (a folder per stage when there are several), the claims into claims.json and
claims.md, the README's generated part above its hand-written Findings, and manifest.json.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from ablate import methods
from ablate.errors import AblateError
from ablate.study.schema import Study, StageView

from analysis.claims import STEERING, UNDECIDED  # noqa: E402  (the verdicts a seed plan adds seeds for)

FINDINGS = "## Findings"
GENERATED = "<!-- Everything above the Findings heading is written by `python -m ablate study`; edit only below it. -->"
TIMING = {"latency.md"}  # outputs that are measured again, not regenerated: --check only asks that they exist
FIGURES = {".png", ".pdf", ".html"}  # checked by existence; the data they plot is runs.csv / pareto.json, exact


def command(study: Study, check: bool = False) -> str:
    return f"python -m ablate study {study.name}" + (" --check" if check else "")


class Runner:
    def __init__(self, study: Study, echo=print):
        self.study, self.echo = study, echo
        self.stages = study.stage_objects()
        self._chosen: dict[str, Optional[dict]] = {}

    # -- what each stage runs --------------------------------------------------------------------------------
    def runs(self, stage: StageView):
        """The FINISHED runs of the stage's own trials (analysis.runs), or None when it has none yet. A grid stage
        reads exactly its trials' runs: runs of other settings in the same experiment (an earlier version of its
        space) are not its answer."""
        from analysis.runs import load_runs
        from ablate.tracking.mlflow_log import trial_key

        try:
            df = load_runs([stage.experiment], [stage.uri], with_steps=False)
        except AblateError as e:
            if "no experiment named" in str(e) or "no FINISHED" in str(e) or "no MLflow database" in str(e):
                return None
            raise
        if stage.space.search == "grid":
            done = self._tracked(stage)
            ids = {done[trial_key(t)].info.run_id for t in self.trials(stage) if trial_key(t) in done}
            attrs = dict(df.attrs)
            df = df[df["run_id"].isin(ids)].reset_index(drop=True)
            df.attrs.update(attrs)
            if df.empty:
                return None
        return df

    def chosen(self, stage_name: str) -> Optional[dict]:
        """{method: knobs} a tuning stage chose, from its runs; None while it has not chosen for every method."""
        if stage_name not in self._chosen:
            stage = self.stage(stage_name)
            df = self.runs(stage)
            record = None
            if df is not None:
                from analysis.tuning import tuning

                _, record = tuning(df, stage.experiment, [b.method for b in stage.space.grid])
            self._chosen[stage_name] = None if record is None or record["not_chosen_yet"] else record["chosen"]
        return self._chosen[stage_name]

    def stage(self, name: str) -> StageView:
        return next(s for s in self.stages if s.stage_name == name)

    def tuned(self, stage: StageView) -> Optional[dict]:
        return self.chosen(stage.stage.tuned_by) if stage.stage.tuned_by else None

    def seeds(self, stage: StageView) -> list[int]:
        """The stage's seeds in the order they are added: the space's, then (with a seed plan) the next integers up to
        the plan's max."""
        seeds = list(stage.space.eval.seeds)
        plan = self.study.seeds
        while plan and len(seeds) < plan.max:
            seeds.append(max(seeds) + 1)
        return seeds

    def space_with_seeds(self, stage: StageView, seeds: list[int]):
        return stage.space.model_copy(update={"eval": stage.space.eval.model_copy(update={"seeds": seeds})})

    def trials(self, stage: StageView, every_seed: bool = True) -> list[dict]:
        """The stage's trials (with a seed plan: at every seed it may add, unless `every_seed` is False)."""
        from ablate.sweep.space import grid_trials

        if stage.space.search not in ("grid", "halving"):
            return []
        space = self.space_with_seeds(stage, self.seeds(stage)) if every_seed else stage.space
        return [asdict(t) for t in grid_trials(space, self.tuned(stage))]

    # -- validation before anything runs -----------------------------------------------------------------------
    def resolved_claims(self) -> list[dict]:
        """Each claim with its variants' knobs resolved (the stage's tuned choice under the claim's own knobs, then
        every default), checked against the trials its stage runs: a variant no stage runs stops here."""
        out = []
        last = self.stages[-1].stage_name
        for i, c in enumerate(self.study.claims):
            stage = self.stage(c.stage or last)
            tuned = self.tuned(stage) or {}
            trials = self.trials(stage)
            pending = bool(stage.stage.tuned_by) and self.tuned(stage) is None
            d = c.model_dump()
            d["margin"] = dict(c.margin)
            for side in ("better", "other"):
                v = getattr(c, side)
                given = {**tuned.get(v.method, {}), **v.knobs}
                knobs = methods.knobs(v.method, given).model_dump(mode="json")
                d[side] = {"method": v.method, "knobs": knobs, "given": dict(v.knobs), "budget": v.budget,
                           "sampler": dict(v.sampler)}
                if not trials:
                    continue
                match = [t for t in trials if t["method"] == v.method
                         and all(_same(t[k], x) for k, x in v.sampler.items())
                         and (pending or methods.knobs(t["method"], t["knobs"]).model_dump(mode="json") == knobs)
                         and (pending or all(t["knobs"].get(k, knobs[k]) == knobs[k] for k in v.knobs))
                         and (v.method == "vanilla" or v.budget is None or t["budget"] == v.budget)
                         and (v.method == "vanilla" or not c.budgets or v.budget is not None
                              or t["budget"] in c.budgets)]
                if not match:
                    raise AblateError(f"claims[{i}].{side}: stage {stage.stage_name!r} runs no {v.text()}"
                                      + (f" at B = {', '.join(map(str, c.budgets))}" if c.budgets else "")
                                      + " (its trials: " + ", ".join(sorted({methods.run_name(dict(t, seed=0))
                                                                              for t in trials})[:6]) + ", ...)")
            d["stage"] = stage.stage_name
            out.append(d)
        return out

    # -- running ----------------------------------------------------------------------------------------------
    def estimate(self, todo: list[dict]) -> tuple[Optional[float], str]:
        """Seconds the trials would take, from past timings: per method, the median eval seconds per sample of its
        finished runs in the study's stores, else in every store committed beside them (results/runs/*.db); and
        where the timings came from. None when no store has any."""
        from analysis.runs import load_runs

        def rates(frames):
            per, every = {}, []
            for df in frames:
                if df is None or "eval_seconds" not in df:
                    continue
                rate = df["eval_seconds"].astype(float) / df["n_samples"].astype(float)
                for m, r in rate.groupby(df["method"]):
                    per.setdefault(m, []).extend(r.dropna().tolist())
                every += rate.dropna().tolist()
            return per, every

        per, every = rates(self.runs(s) for s in self.stages)
        source = "the study's stores"
        if not every:
            frames = []
            for db in sorted(self.study.path("results/runs").glob("*.db")):
                client_uri = f"sqlite:///{db.resolve()}"
                try:
                    from ablate.tracking.mlflow_log import open_client

                    names = [e.name for e in open_client(client_uri).search_experiments()]
                    frames.append(load_runs(names, [client_uri], with_steps=False))
                except AblateError:
                    continue
            per, every = rates(frames)
            source = "the stores committed in results/runs"
        if not every:
            return None, "no past timing"
        fallback = statistics.median(every)
        return sum(statistics.median(per.get(t["method"]) or [fallback]) * t["n_samples"] for t in todo), source

    def dry_run(self, only: Optional[list[str]] = None) -> None:
        from ablate.tracking.mlflow_log import trial_key

        self.resolved_claims()
        total = 0.0
        for stage in self._selected(only):
            trials = self.trials(stage, every_seed=False)
            done = self._tracked_keys(stage)
            todo = [t for t in trials if trial_key(t) not in done]
            pending = stage.stage.tuned_by and self.tuned(stage) is None
            est, source = self.estimate(todo)
            total += est or 0.0
            self.echo(f"stage {stage.stage_name} (experiment {stage.experiment}, {stage.space.search}): "
                      f"{len(trials)} trials, {len(trials) - len(todo)} tracked, {len(todo)} to run"
                      + (f" (knobs pending: stage {stage.stage.tuned_by} has not chosen yet)" if pending else "")
                      + (f", about {est / 3600:.2f} h from {source}' past timings" if est is not None and todo
                         else ", no past timing in any store" if todo else "")
                      + f"; analyses: {', '.join(stage.stage.analyses) or 'none'}")
            for t in todo[:50]:
                self.echo(f"  {methods.run_name(t)}")
            if len(todo) > 50:
                self.echo(f"  ... and {len(todo) - 50} more")
            if self.study.seeds:
                more = [t for t in self.trials(stage) if trial_key(t) not in done and t not in trials]
                est_more, _ = self.estimate(more)
                self.echo(f"  then, while claims are undecided, one seed at a time up to {self.study.seeds.max}: at "
                          f"most {len(more)} more trials" + (f" (about {est_more / 3600:.2f} h more)" if est_more else ""))
        if self.study.claims:
            self.echo(f"claims: {len(self.study.claims)} -> {self.study.out_dir() / 'claims.json'}")
        self.echo(f"writes {self.study.out_dir()}/ (README.md, manifest.json); about {total / 3600:.2f} h to run "
                  "(sampling and scoring; a learned method's model not yet in the store trains first: minutes each)")

    def _tracked(self, stage: StageView) -> dict:
        """trial key -> FINISHED run in the stage's experiment (read only)."""
        from ablate.tracking.mlflow_log import finished_by_key, open_client

        uri = stage.uri or _default_uri()
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
            return {}  # no store yet: nothing tracked (and reading must not create one)
        client = open_client(uri)
        exp = client.get_experiment_by_name(stage.experiment)
        return finished_by_key(client, exp.experiment_id) if exp is not None else {}

    def _tracked_keys(self, stage: StageView) -> set:
        return set(self._tracked(stage))

    def _selected(self, only: Optional[list[str]]) -> list[StageView]:
        if not only:
            return self.stages
        names = [s.stage_name for s in self.stages]
        for o in only:
            if o not in names:
                raise AblateError(f"--only: no stage {o!r} in study {self.study.name} (stages: {', '.join(names)})")
        return [s for s in self.stages if s.stage_name in only]

    def run(self, only: Optional[list[str]] = None, resume: bool = False, cmd: Optional[str] = None,
            timing: bool = True) -> dict:
        """Sweeps (what the store lacks), then every output; returns the manifest. `timing` False: keep the timing
        analyses' committed files instead of timing again."""
        import time

        from ablate.sweep.run import run_sweep

        self.resolved_claims()  # a bad claim stops before anything runs
        seconds, failed = {}, 0
        for stage in self._selected(only):
            if stage.stage.tuned_by and self.tuned(stage) is None:
                raise AblateError(f"stage {stage.stage_name}: stage {stage.stage.tuned_by} has not chosen knobs for "
                                  "every method yet; run it first")
            t0 = time.perf_counter()
            res = run_sweep(stage.space, experiment=stage.experiment, tracking_uri=stage.uri, resume=resume,
                            tuned=self.tuned(stage), reuse_tracked=True)
            failed += res.get("trials_failed", 0)
            self._chosen.clear()  # a tuning stage's choice may have just been made
            if self.study.seeds:
                failed += self._seeds_until_decided(stage)
            seconds[stage.stage_name] = time.perf_counter() - t0
        manifest = self.write(self.study.out_dir(), cmd=cmd, timing=timing)
        manifest["wall_seconds_this_run"] = seconds
        (self.study.out_dir() / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return manifest | {"trials_failed": failed}

    def _seeds_until_decided(self, stage: StageView) -> int:
        """Seeds as needed: while a claim of this stage is undecided under the group-sequential test, its two variants
        (at its budget) get one more seed, up to the plan's max; decided claims get none. Returns failed trials."""
        from ablate.sweep.run import run_sweep

        order, failed = self.seeds(stage), 0
        while True:
            claims = {c["name"]: c for c in self.resolved_claims() if c["stage"] == stage.stage_name}
            todo = seed_requests(self.claim_entries(stage), claims, order, self.trials(stage),
                                 self._tracked_keys(stage), self.study.seeds.max)
            if not todo:  # every claim decided or at max seeds (or its next trials ran and failed): done
                return failed
            seeds = sorted({t["seed"] for t in todo} | set(stage.space.eval.seeds))
            self.echo(f"stage {stage.stage_name}: claims undecided; {len(todo)} more trial(s) at seeds "
                      f"{', '.join(map(str, sorted({t['seed'] for t in todo})))}")
            res = run_sweep(self.space_with_seeds(stage, [s for s in order if s in seeds]), experiment=stage.experiment,
                            tracking_uri=stage.uri, reuse_tracked=True, tuned=self.tuned(stage), only_trials=todo)
            failed += res.get("trials_failed", 0)
            if res.get("trials_failed"):
                return failed

    def claim_entries(self, stage: StageView) -> list[dict]:
        """The claims of one stage, decided on its runs so far (what the seed plan steers by)."""
        from analysis.claims import evaluate

        s = self.study
        cs = [c for c in self.resolved_claims() if c["stage"] == stage.stage_name]
        df = self.runs(stage)
        if not cs or df is None:
            return []
        return evaluate(df, cs, s.name, s.alpha, s.correction, s.seeds.model_dump() if s.seeds else None)

    def plan(self, diffs: dict[str, float]) -> list[str]:
        """How many seeds each claim needs to find a given true difference (per measure) with 80% power at its
        corrected level, from the paired spread its runs show (a pilot of 3 seeds is enough to ask)."""
        from analysis.stats import seeds_needed

        lines = ["| claim | B | measure | seeds run | paired SD | difference to find | seeds needed |",
                 "|---|---|---|---|---|---|---|"]
        for stage in self.stages:
            entries = [e for e in self.claim_entries(stage) if e.get("sd") is not None]
            sizes: dict = {}
            for e in entries:
                sizes[(e["family"], e["measure"])] = sizes.get((e["family"], e["measure"]), 0) + 1
            for e in entries:
                delta = e["margin"] if e["kind"] != "better" else diffs.get(e["measure"])
                if delta is None:
                    continue
                level = self.study.alpha / sizes[(e["family"], e["measure"])]
                n = seeds_needed(e["sd"], delta, level, one_sided=e["kind"] != "better")
                lines.append(f"| {e['claim']} | {e['budget']} | {e['measure']} | {e['n_seeds']} | {e['sd']:.4g} | "
                             f"{delta:g} | {n} |")
        lines += ["", f"80% power at the claim's corrected level (alpha {self.study.alpha:g} / tests in its family and "
                  "measure, Holm's strictest step); no_loss and equivalent claims: to show their margin were the "
                  "true difference 0. More samples a run shrink the paired SD too."]
        return lines

    # -- outputs ------------------------------------------------------------------------------------------------
    def write(self, out: Path, cmd: Optional[str] = None, timing: bool = True) -> dict:
        """Every output into `out` (a study folder, or a scratch one for --check); returns the manifest. `timing`:
        also run the analyses that time (latency)."""
        from ablate.study.manifest import environment, store_digest
        from analysis.claims import summary

        out.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        stages = []
        for stage in self.stages:
            df = self.runs(stage)
            if df is None:
                stages.append({"name": stage.stage_name, "experiment": stage.experiment, "store": stage.store,
                               "runs": 0})
                continue
            sdir = out if len(self.stages) == 1 else out / stage.stage_name
            sdir.mkdir(parents=True, exist_ok=True)
            for name in stage.stage.analyses:
                if name == "latency" and not timing:  # its committed file stays as it is (listed where it exists)
                    kept = self.study.out_dir() / sdir.relative_to(out) / "latency.md"
                    files += [sdir / "latency.md"] if kept.is_file() else []
                    continue
                files += self._analysis(name, stage, df, sdir)
            stages.append(self._stage_record(stage, df))
        entries = []
        if self.study.claims:
            files += self._claims(out, entries)
        digest = {s.stage_name: store_digest(s.uri or _default_uri(), [s.experiment]) for s in self.stages}
        manifest = {
            "study": self.study.name, "question": self.study.question,
            "command": cmd or command(self.study), "check": command(self.study, check=True),
            "store": self.study.store, "store_digest": digest, "stages": stages,
            "claims": summary(entries) if entries else {}, "checkable": all(s.store for s in self.stages),
            **environment(),
        }
        files.append(self._readme(out, manifest, entries, files))
        manifest["files"] = sorted({str(f.relative_to(out)) for f in files})
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return manifest

    def _stage_record(self, stage: StageView, df) -> dict:
        from analysis.tuning import cpu_seconds

        rec = {"name": stage.stage_name, "experiment": stage.experiment, "store": stage.store, "runs": int(len(df)),
               "seeds": sorted(int(s) for s in df["seed"].unique()),
               "n_samples": sorted(int(n) for n in df["n_samples"].dropna().unique()),
               "cpu_seconds": round(cpu_seconds(df), 1) if "eval_seconds" in df else None}
        if stage.stage.tuned_by:
            rec["tuned_by"] = stage.stage.tuned_by
            rec["tuned"] = self.tuned(stage)
        return rec

    def _analysis(self, name: str, stage: StageView, df, sdir: Path) -> list[Path]:
        cmd = command(self.study)
        if name == "report":
            from analysis.report import report

            rep = report([stage.experiment], [stage.uri], out=sdir, index_name="report.md", command_text=cmd,
                         title=f"{self.study.name}, stage {stage.stage_name}", echo=self.echo)
            for note in rep.notes:
                self.echo(f"report note: {note}")
            return list(rep.files)
        if name == "tuning":
            from analysis.tuning import tuning

            lines, record = tuning(df, stage.experiment, [b.method for b in stage.space.grid])
            (sdir / "chosen.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
            return [_md(sdir / "tuning.md", lines, cmd), sdir / "chosen.json"]
        if name == "small_sample":
            from analysis.small_sample import small_sample

            return [_md(sdir / "small_sample.md", small_sample(df, stage.experiment, stage.stage.small), cmd)]
        if name == "search_cost":
            from analysis.search_replay import replay

            written = []
            plans = stage.stage.replay if isinstance(stage.stage.replay, list) else [stage.stage.replay]
            for r in map(dict, plans):
                where = sdir / r.pop("folder") if "folder" in r else sdir
                where.mkdir(parents=True, exist_ok=True)
                live = {k: self.stage(v).experiment if v in [s.stage_name for s in self.stages] else v
                        for k, v in r.pop("live", {}).items()}
                lines = replay(stage.experiment, stage.uri, where, live=live, **r)
                written += [_md(where / "search_cost.md", lines, cmd), where / "search_cost.png",
                            where / "search_cost.pdf", where / "replay.json"]
            return written
        if name == "latency":
            from ablate.study.latency import interleaved, space_settings

            lat = stage.stage.latency
            lines = interleaved(space_settings(stage.space, self.tuned(stage)), int(lat.get("rounds", 5)),
                                int(lat.get("batch_size", 100)), str(lat.get("device", "cpu")), cmd)
            return [_md(sdir / "latency.md", lines, None)]
        raise AblateError(f"analyses: unknown analysis {name!r}")

    def _claims(self, out: Path, entries: list) -> list[Path]:
        from analysis.claims import evaluate, markdown

        s = self.study
        plan = s.seeds.model_dump() if s.seeds else None
        claims = self.resolved_claims()
        by_stage: dict = {}
        for c in claims:
            by_stage.setdefault(c["stage"], []).append(c)
        frames = []
        for name, cs in by_stage.items():
            df = self.runs(self.stage(name))
            if df is None:
                continue
            entries += evaluate(df, cs, s.name, s.alpha, s.correction, plan)
            frames.append(df)
        if not entries:
            return []
        import pandas as pd

        written = [{k: v for k, v in e.items() if k not in STEERING} for e in entries]
        (out / "claims.json").write_text(json.dumps(_finite(written), indent=1) + "\n")
        if len(by_stage) > 1:  # families span stages: decide them together
            from analysis.claims import finalize

            for e in entries:
                for k in ("p_adjusted", "verdict", "mde", "p_adjusted_equal_cost", "verdict_equal_cost",
                          "mde_equal_cost", "correction", "family_size"):
                    if k == "verdict" and e[k] == "n/a":
                        continue
                    e.pop(k, None)
            finalize(entries, s.alpha, s.correction, plan)
        lines = markdown(entries, pd.concat(frames), s.claims_title, s.alpha)
        return [_md(out / "claims.md", lines, command(self.study)), out / "claims.json"]

    def _readme(self, out: Path, manifest: dict, entries: list, files: list[Path]) -> Path:
        s = self.study
        path = out / "README.md"
        findings = _findings(s.out_dir() / "README.md")
        lines = [f"# {s.name}", "", f"**Question.** {s.question}", "", GENERATED, "",
                 f"- Run: `{command(s)}`; check that every output regenerates from the runs: `{command(s, True)}`."]
        for st in manifest["stages"]:
            where = f"experiment `{st['experiment']}` in `{st.get('store') or 'the local default store'}`"
            if not st.get("runs"):
                lines.append(f"- Stage `{st['name']}` ({where}): no runs yet.")
                continue
            lines.append(f"- Stage `{st['name']}` ({where}): {st['runs']} runs, seeds "
                         f"{', '.join(map(str, st['seeds']))}, {', '.join(map(str, st['n_samples']))} samples a run"
                         + (f", {st['cpu_seconds'] / 3600:.2f} CPU-hours" if st.get("cpu_seconds") else "")
                         + (f"; knobs chosen by stage `{st['tuned_by']}`" if st.get("tuned_by") else "") + ".")
        if entries:
            c = manifest["claims"]
            corr = sorted({e.get("correction") for e in entries if e.get("correction")})
            lines += ["", "## Claims", "",
                      f"{c['tests']} tests ({len(s.claims)} claims x budgets x measures), verdicts after the correction "
                      f"for the number of tests in each family ({'; '.join(corr)}): "
                      + ", ".join(f"{v} {k}" for k, v in c["verdicts"].items())
                      + ("; on FID: " + ", ".join(f"{v} {k}" for k, v in c["fid"].items()) if c["fid"] else "")
                      + ". Every verdict, difference, raw and adjusted p and mde: [claims.md](claims.md) "
                      "([claims.json](claims.json)).", ""]
            yes = ("HOLDS", "DOES NOT HOLD")
            decided = [e for e in entries if e["verdict"] in yes or e.get("verdict_equal_cost") in yes]
            if decided:
                lines += ["Decided after the correction (at equal B, and at equal FLOPs where the costs differ):", ""]
                for e in decided:
                    if e.get("compared") == "equal_cost":  # its one test is at equal FLOPs
                        lines.append(f"- {e['claim']}, at equal FLOPs only, {e['measure']}: **{e['verdict']}** "
                                     f"({e['diff_equal_cost']:+.3f}, adjusted p = {e['p_adjusted_equal_cost']:.3g})")
                        continue
                    at_b = (f"**{e['verdict']}** ({e['diff']:+.3f}, adjusted p = {e['p_adjusted']:.3g})"
                            if e["verdict"] in yes else f"{e['verdict']} at equal B")
                    at_cost = (f"; at equal FLOPs **{e['verdict_equal_cost']}** ({e['diff_equal_cost']:+.3f}, "
                               f"adjusted p = {e['p_adjusted_equal_cost']:.3g})"
                               if e.get("verdict_equal_cost") in yes else
                               f"; at equal FLOPs {e['verdict_equal_cost']}" if e.get("verdict_equal_cost") else "")
                    lines.append(f"- {e['claim']}, B = {e['budget']}, {e['measure']}: {at_b}{at_cost}")
        shown = list(dict.fromkeys(f for f in files if f.suffix == ".md" and f.name != "README.md"))
        if shown:
            lines += ["", "## Files", ""] + [f"- [{f.relative_to(out)}]({f.relative_to(out)})" for f in shown]
        lines += ["", FINDINGS, "", findings.strip() or "(none written yet)", ""]
        path.write_text("\n".join(lines))
        return path

    # -- check ----------------------------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Regenerate every output from the store alone into a scratch folder and compare with the committed one;
        returns one line per difference (empty: it regenerates)."""
        s = self.study
        self.echo = lambda *_: None
        man = s.out_dir() / "manifest.json"
        old = json.loads(man.read_text()) if man.is_file() else {}
        if old.get("historical"):
            raise AblateError(f"study {s.name}: not checkable until rerun (`{command(s)}`): {old['historical']}")
        if any(st.store is None for st in self.stages):
            raise AblateError(f"study {s.name}: not checkable: a stage commits no store (give the study "
                              "`store: results/runs/NAME.db`)")
        for st in self.stages:
            if "://" not in st.store and not s.path(st.store).is_file():
                raise AblateError(f"store: no database {st.store} (run `{command(s)}` first)")
        committed = s.out_dir()
        problems = []
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / s.name
            new = self.write(fresh, timing=False)  # the README keeps the committed findings (read from out_dir)
            old = json.loads((committed / "manifest.json").read_text()) if (committed / "manifest.json").is_file() \
                else None
            if old is None:
                return [f"{committed / 'manifest.json'}: missing"]
            for st in self.stages:
                was, now = (old.get("store_digest") or {}).get(st.stage_name), new["store_digest"][st.stage_name]
                if was != now:
                    problems.append(f"{st.store}: the runs of stage {st.stage_name} differ from those the committed "
                                    f"outputs were made from (manifest store_digest {was} != {now})")
            for name in sorted(set(old.get("files", [])) | set(new["files"])):
                a, b = committed / name, fresh / name
                if not a.exists():
                    problems.append(f"{a}: missing (the study writes it)")
                elif not b.exists() and name not in old.get("files", []):
                    continue
                elif not b.exists():
                    if Path(name).name in TIMING or Path(name).suffix in FIGURES:
                        continue  # timed again only by running, or drawn from artifacts this store lacks
                    problems.append(f"{a}: not regenerated from the store")
                elif Path(name).name in TIMING or Path(name).suffix in FIGURES:
                    continue
                elif name == "README.md":
                    if _generated(a.read_text()) != _generated(b.read_text()):
                        problems.append(f"{a}: its generated part differs")
                elif a.read_bytes() != b.read_bytes():
                    problems.append(f"{a}: differs from what the store gives ({_first_diff(a, b)})")
        return problems


def seed_requests(entries: list[dict], claims: dict, order: list[int], trials: list[dict], done: set,
                  most: int) -> list[dict]:
    """The trials a seed plan runs next: for every claim still undecided with fewer than `most` seeds, its two
    variants (at its budget) at the next seed of `order`; for every equal-FLOPs test still undecided, the first at
    its budget and the second at the two budgets around that cost, at the next seed the test lacks; none that its
    store already tracked; each once."""
    from ablate.tracking.mlflow_log import trial_key

    want = set()
    for e in entries:
        if e["verdict"] in UNDECIDED and e["n_seeds"] < most:
            for side in ("better", "other"):
                want.add((e["claim"], e["budget"], side, order[e["n_seeds"]]))
        n = e.get("n_seeds_equal_cost") or 0
        if e.get("verdict_equal_cost") in UNDECIDED and e.get("budgets_equal_cost") and n < most:
            want.add((e["claim"], e["budget"], "better", order[n]))
            want |= {(e["claim"], b, "other", order[n]) for b in e["budgets_equal_cost"]}
    todo = {}
    for name, b, side, seed in sorted(want, key=str):
        for t in trials:
            if t["seed"] == seed and _is_variant(t, claims[name][side], b) and trial_key(t) not in done:
                todo[trial_key(t)] = t
    return list(todo.values())


def _is_variant(trial: dict, v: dict, budget: int) -> bool:
    """Whether a trial is one side of a claim (resolved knobs, its budget, its sampler settings)."""
    if trial["method"] != v["method"]:
        return False
    if v["method"] != "vanilla" and trial["budget"] != (v.get("budget") or budget):
        return False
    if not all(_same(trial[k], x) for k, x in (v.get("sampler") or {}).items()):
        return False
    return methods.knobs(trial["method"], trial["knobs"]).model_dump(mode="json") == v["knobs"]


def _same(a, b) -> bool:
    """A sampler setting as a trial holds it and as a claim names it (numbers as numbers, names as names)."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _md(path: Path, lines: list[str], cmd: Optional[str]) -> Path:
    text = "\n".join(lines) + (f"\n\n`{cmd}`\n" if cmd else "\n")
    path.write_text(text)
    return path


def _finite(obj):
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _findings(readme: Path) -> str:
    if not readme.is_file():
        return ""
    text = readme.read_text()
    return text.split(FINDINGS, 1)[1] if FINDINGS in text else ""


def _generated(text: str) -> str:
    return text.split(FINDINGS, 1)[0]


def _first_diff(a: Path, b: Path) -> str:
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return f"line {i + 1}: committed {x[:80]!r}, regenerated {y[:80]!r}"
    return f"{len(la)} lines committed, {len(lb)} regenerated"


def _default_uri() -> str:
    from ablate.tracking.mlflow_log import default_tracking_uri

    return default_tracking_uri()

