"""Studies: one YAML per question, run by `python -m ablate study`, checked by `--check` against its committed store.

The committed `smoke` study (a store of 6 runs) is the small study every check here runs on; baselines_N16's two
stores test that a tuned stage runs exactly what its store tracked. Checked against broken versions once: a check
that skipped .md files let the altered claims.md pass; resolving the reporting stage without the tuning stage's
choice failed the tuned-stage test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.errors import AblateError

REPO = Path(__file__).resolve().parents[1]


def project_copy(tmp_path: Path, study: str = "smoke") -> Path:
    """A project of its own holding one committed study: its YAML, its results folder and its store."""
    from ablate.study.schema import load_study

    s = load_study(study)
    root = tmp_path / "project"
    (root / "studies").mkdir(parents=True)
    shutil.copy(REPO / "studies" / f"{study}.yaml", root / "studies")
    shutil.copytree(s.out_dir(), root / "results" / study)
    (root / "results" / "runs").mkdir()
    shutil.copy(s.path(s.store), root / "results" / "runs")
    import sqlite3

    with sqlite3.connect(root / "results" / "runs" / Path(s.store).name) as db:  # new runs' artifacts stay in the copy
        for exp_id, name in db.execute("select experiment_id, name from experiments").fetchall():
            where = (root / "results" / "runs" / "artifacts" / name).as_uri()
            db.execute("update experiments set artifact_location = ? where experiment_id = ?", (where, exp_id))
    return root


def cli(args, cwd, timeout=600):
    env = dict(os.environ, ABLATE_PROGRESS="0", RAY_AUTH_MODE="disabled")
    return subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def test_the_committed_smoke_study_regenerates_from_its_store():
    from ablate.study.run import Runner
    from ablate.study.schema import load_study

    assert Runner(load_study("smoke")).check() == []


def test_check_fails_naming_the_file_that_differs(tmp_path):
    """A changed table, a changed store and a missing output each fail the check with a line naming them; the
    hand-written findings may change freely."""
    from ablate.study.run import Runner
    from ablate.study.schema import load_study

    root = project_copy(tmp_path)
    study = load_study(str(root / "studies" / "smoke.yaml"))
    assert study.out_dir() == root / "results" / "smoke"  # paths start at the study's project, not the cwd
    readme = root / "results" / "smoke" / "README.md"
    readme.write_text(readme.read_text() + "\nA new finding, written by hand.\n")
    assert Runner(study).check() == []
    claims = root / "results" / "smoke" / "claims.md"
    claims.write_text(claims.read_text().replace("±", "+/-", 1))
    (root / "results" / "smoke" / "summary.tex").unlink()
    problems = Runner(study).check()
    assert any("claims.md: differs" in p for p in problems), problems
    assert any("summary.tex: missing" in p for p in problems), problems
    man = root / "results" / "smoke" / "manifest.json"
    m = json.loads(man.read_text())
    m["store_digest"]["smoke_study"]["sha256"] = "0" * 64  # as if the runs had changed since the outputs
    man.write_text(json.dumps(m))
    assert any("smoke.db: the runs of stage smoke_study differ" in p for p in Runner(study).check())


def test_check_through_the_cli_exits_non_zero_and_a_historical_study_says_so(tmp_path):
    root = project_copy(tmp_path)
    (root / "results" / "smoke" / "runs.csv").write_text("changed\n")
    out = cli(["study", "smoke", "--check"], root)
    assert out.returncode == 1 and "runs.csv: differs" in out.stderr, out.stderr[-2000:]
    out = cli(["study", "search_cost", "--check"], REPO)
    assert out.returncode == 2 and out.stderr.startswith("error: study search_cost: not checkable until rerun")


def test_a_users_own_study_gets_its_claim_verdict_without_touching_the_package(tmp_path):
    """A study file written in a folder of its own, one claim between two methods, over the runs of a store it
    was given: its verdict lands in claims.json and claims.md, with a README and a manifest."""
    root = project_copy(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(root / "results" / "runs" / "smoke.db", mine / "store.db")
    yaml_text = (root / "studies" / "smoke.yaml").read_text().split("claims:")[0].replace(
        "store: results/runs/smoke.db", "store: store.db").replace("name: smoke\n", "name: mine\n")
    (mine / "mine.yaml").write_text(yaml_text + "claims:\n  - name: feature caching beats Taylor\n"
                                    "    better: {method: feature_cache}\n    other: {method: taylor, knobs: {order: 1}}\n"
                                    "    measures: [fid]\n    family: mine\n")
    out = cli(["study", str(mine / "mine.yaml"), "--no-timing"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    entries = json.loads((mine / "results" / "mine" / "claims.json").read_text())
    assert [(e["claim"], e["measure"], e["family"], e["n_seeds"]) for e in entries] == \
        [("feature caching beats Taylor", "fid", "mine", 2)]
    assert entries[0]["verdict"] in ("HOLDS", "DOES NOT HOLD", "NOT SIGNIFICANT")
    assert entries[0]["p"] is not None and entries[0]["diff"] is not None
    assert "feature caching beats Taylor" in (mine / "results" / "mine" / "claims.md").read_text()
    man = json.loads((mine / "results" / "mine" / "manifest.json").read_text())
    assert man["stages"][0]["seeds"] == [0, 1] and man["stages"][0]["n_samples"] == [40]
    assert man["checkable"] and man["versions"]["mlflow"] and man["command"].startswith("python -m ablate study")
    assert not (REPO / "results" / "mine").exists()


@pytest.mark.parametrize("edit,field", [
    (lambda y: y + "bogus: 1\n", "bogus"),
    (lambda y: y.replace("{method: feature_cache, budget: 2}", "{method: no_such_method, budget: 2}"),
     "stages[0].space.grid[0].method"),
    (lambda y: y.replace("knobs: {order: 1}}\n", "knobs: {ordre: 1}}\n", 1), "stages[0].space.grid[1]"),
    (lambda y: y.replace("other: {method: feature_cache}", "other: {method: feature_cache, budget: 3}"),
     "claims[0].other"),
    (lambda y: y.replace("better: {method: taylor, knobs: {order: 1}}", "better: {method: shortcut}"),
     "claims[0].better"),
    (lambda y: y.replace("  - analyses: [report]\n", "  - analyses: [report]\n    tuned_by: nothing\n"),
     "stages[0].tuned_by"),
    (lambda y: y.replace("analyses: [report]", "analyses: [reprot]"), "stages[0].analyses"),
    (lambda y: y.replace("    other: {method: feature_cache}\n", "    other: {method: feature_cache}\n"
                         "    at: equal_cost\n    budgets: [2]\n", 1), "claims[0]"),
])
def test_a_bad_study_stops_with_one_line_naming_the_field_before_anything_runs(tmp_path, edit, field):
    root = project_copy(tmp_path)
    path = root / "studies" / "smoke.yaml"
    path.write_text(edit(path.read_text()))
    shutil.rmtree(root / "results")
    out = cli(["study", "smoke"], root, timeout=120)
    assert out.returncode == 2, out.stdout[-1000:] + out.stderr[-2000:]
    line = out.stderr.strip()
    assert line.startswith(f"error: {field}") and "\n" not in line and "Traceback" not in out.stderr, line
    assert not (root / "results").exists()  # no store, no folder: nothing ran


def test_dry_run_lists_what_the_store_lacks_and_its_cost_from_past_timings(tmp_path):
    root = project_copy(tmp_path)
    path = root / "studies" / "smoke.yaml"
    path.write_text(path.read_text().replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    before = (root / "results" / "runs" / "smoke.db").read_bytes()
    out = cli(["study", "smoke", "--dry-run"], root, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "9 trials, 6 tracked, 3 to run" in out.stdout and " h from the study's stores' past timings" in out.stdout
    assert "taylor-N8-B2-s2" in out.stdout and "taylor-N8-B2-s1" not in out.stdout
    assert (root / "results" / "runs" / "smoke.db").read_bytes() == before  # a dry run writes nothing
    out = cli(["study", "smoke", "--dry-run", "--only", "nope"], root, timeout=120)
    assert out.returncode == 2 and "error: --only: no stage 'nope'" in out.stderr


def test_the_reporting_stage_runs_exactly_what_its_store_tracked():
    """baselines_N16's reporting stage, resolved with the knobs its tuning stage chose (read from the tuning store,
    not copied by hand), is the 111 trials its store holds, no more and no fewer; the tuning seeds are never the
    reported ones, and every method tuning tried is reported."""
    from ablate.study.run import Runner
    from ablate.study.schema import load_study
    from ablate.tracking.mlflow_log import trial_key

    runner = Runner(load_study("baselines_N16"))
    tuning, reporting = runner.stage("tuning"), runner.stage("reporting")
    assert runner.tuned(reporting)["taylor"] == {"order": 2} and runner.tuned(reporting)["ml_cache"]["cache_ratio"] == 0.7
    trials = runner.trials(reporting)
    assert {trial_key(t) for t in trials} == runner._tracked_keys(reporting) and len(trials) == 111
    assert {trial_key(t) for t in runner.trials(tuning)} == runner._tracked_keys(tuning)
    assert not set(tuning.space.eval.seeds) & set(reporting.space.eval.seeds)
    tuned = {b.method for b in tuning.space.grid}
    reported = {b.method for b in reporting.space.grid}
    assert tuned <= reported and reported - tuned == {"step_reduction", "feature_cache", "adaptive"}


def test_latency_times_exactly_the_settings_the_stage_runs(tmp_path):
    """The latency analysis times each distinct setting of a stage once, its reference first, at the space's own
    sampler settings (not defaults rebuilt by hand)."""
    from ablate.study.latency import space_settings
    from ablate.study.run import Runner
    from ablate.study.schema import load_study
    from ablate.sweep.space import load_space

    runner = Runner(load_study("baselines_N16"))
    reporting = runner.stage("reporting")
    settings = space_settings(reporting.space, runner.tuned(reporting))
    assert (settings[0].method, settings[0].budget) == ("vanilla", None)
    assert len(settings) == len(runner.trials(reporting)) // 3 == 37  # three seeds a setting
    hot = tmp_path / "hot.yaml"
    hot.write_text("name: hot\nsteps: 8\nsampler: {cfg_w: 2.0, r_temp: 4.5}\nreferences: [8]\n"
                   "grid: [{method: taylor, budget: [2, 4]}]\n")
    assert {(t.cfg_w, t.r_temp) for t in space_settings(load_space(hot))} == {(2.0, 4.5)}
    with pytest.raises(AblateError, match="^latency: hot2 has references"):
        space_settings(load_space(hot.parent / "hot.yaml").model_copy(update={"name": "hot2", "references": []}))


@pytest.mark.slow
def test_a_fresh_study_runs_its_sweep_then_reuses_every_tracked_trial(tmp_path):
    """End to end on a real Ray and MLflow: a study of its own runs its sweep, writes its claim's verdict, and run
    again runs nothing (the store is not written: the same runs, the same digest)."""
    study = tmp_path / "fresh.yaml"
    study.write_text("""name: fresh
question: Does Taylor beat feature caching at B = 2 of N = 6 (plumbing only)?
store: runs/fresh.db
stages:
  - analyses: [report]
    space:
      name: fresh
      steps: 6
      eval: {n_samples: 20, batch_size: 20, seeds: [0, 1]}
      resources: {cpu: 1}
      references: [6]
      grid:
        - {method: feature_cache, budget: 2}
        - {method: taylor, budget: 2}
claims:
  - {name: Taylor beats feature caching, better: {method: taylor}, other: {method: feature_cache}}
""")
    out = cli(["study", str(study), "--no-timing"], tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    entries = json.loads((tmp_path / "results" / "fresh" / "claims.json").read_text())
    assert {e["measure"] for e in entries} == {"fid", "token_agreement"} and all(e["n_seeds"] == 2 for e in entries)
    digest = json.loads((tmp_path / "results" / "fresh" / "manifest.json").read_text())["store_digest"]
    assert digest["fresh"]["runs"] == 7  # 6 trials and the sweep's parent run
    out = cli(["study", str(study), "--no-timing"], tmp_path, timeout=600)
    assert out.returncode == 0 and "all 6 trials already tracked" in out.stdout, out.stdout[-2000:]
    assert json.loads((tmp_path / "results" / "fresh" / "manifest.json").read_text())["store_digest"] == digest
    assert cli(["study", str(study), "--check"], tmp_path).returncode == 0


@pytest.mark.slow
def test_a_seed_plan_adds_seeds_only_while_a_claim_is_undecided(tmp_path):
    """The committed smoke study with `seeds: {min: 2, max: 3}`: its claim is undecided on FID after 2 seeds, so its
    two variants (and the reference of the new seed) run a third, then it stops at the plan's max; the verdicts use
    the group-sequential test."""
    root = project_copy(tmp_path)
    shutil.copytree(REPO / "results" / "runs" / "artifacts" / "smoke_study",
                    root / "results" / "runs" / "artifacts" / "smoke_study")
    path = root / "studies" / "smoke.yaml"
    path.write_text(path.read_text().replace("store: results/runs/smoke.db\n",
                                             "store: results/runs/smoke.db\nseeds: {min: 2, max: 3, until: decided}\n"))
    out = cli(["study", "smoke", "--no-timing"], root, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "claims undecided; 2 more trial(s) at seeds 2" in out.stdout
    entries = json.loads((root / "results" / "smoke" / "claims.json").read_text())
    assert {e["n_seeds"] for e in entries} == {3} and all("group-sequential" in e["correction"] for e in entries)
    man = json.loads((root / "results" / "smoke" / "manifest.json").read_text())
    assert man["stages"][0]["seeds"] == [0, 1, 2] and man["store_digest"]["smoke_study"]["runs"] == 9 + 2  # 2 parents


def test_a_timing_tool_writes_its_output_and_one_manifest_entry_per_file(tmp_path):
    """benchmarks/ tools share `write_tool_output`: the Markdown lines as written, and manifest.json beside them
    gaining one entry per file (command, environment, the tool's own fields) without losing the earlier ones."""
    import json

    from ablate.study.manifest import write_tool_output

    write_tool_output(tmp_path / "t" / "a.md", ["# a", "x"], "python a.py", {"what": "timing: a", "rounds": 2})
    write_tool_output(tmp_path / "t" / "b.md", ["# b"], "python b.py")
    assert (tmp_path / "t" / "a.md").read_text() == "# a\nx\n"
    man = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert man["kind"] == "tool" and set(man["files"]) == {"a.md", "b.md"}
    assert man["files"]["a.md"]["command"] == "python a.py" and man["files"]["a.md"]["rounds"] == 2
    assert "torch" in man["files"]["b.md"]["versions"]
