"""What identifies a trial: one derivation (ablate.evaluate.trial_identity) for --resume, the tracker and studies.

Checked against broken versions once: keying trials by (method, steps, budget, knobs, seed) as grid_trials once
did collapsed the two cfg_w trials; leaving `training_format` out of the identity kept the old run of a
retrained method.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from ablate.evaluate import EvalConfig, trial_identity, trial_key


def test_a_default_given_or_left_out_is_one_trial_and_cpu_runs_fp32():
    a = EvalConfig(method="taylor", budget=4, knobs={})
    b = EvalConfig(method="taylor", budget=4, knobs={"order": 1})  # taylor's default order
    assert trial_key(a) == trial_key(b)
    assert trial_key(a) != trial_key(EvalConfig(method="taylor", budget=4, knobs={"order": 2}))
    assert trial_key(EvalConfig(amp="auto")) == trial_key(EvalConfig(amp="fp32"))  # the CPU runs fp32 anyway
    assert trial_key(EvalConfig(device="cuda", amp="auto")) != trial_key(EvalConfig(device="cuda", amp="fp32"))
    assert trial_key(EvalConfig(base="native")) == trial_key(EvalConfig(base=None))


@pytest.mark.parametrize("field", ["cfg_w", "r_temp", "sm_temp", "n_samples", "batch_size", "reference", "seed"])
def test_every_sampler_and_eval_setting_is_part_of_the_key(field):
    a = EvalConfig()
    changed = "train" if field == "reference" else getattr(a, field) + 1
    assert trial_key(a) != trial_key(EvalConfig(**(asdict(a) | {field: changed})))


@pytest.mark.parametrize("method", ["shortcut", "residual_shortcut", "l2p"])
def test_every_learned_methods_training_format_is_part_of_the_key(method, monkeypatch):
    from ablate import methods

    cfg = EvalConfig(method=method, budget=4)
    before = trial_key(cfg)
    assert trial_identity(cfg)["training_format"] is not None
    monkeypatch.setattr(methods.get(method), "training_format", 99)
    assert trial_key(cfg) != before
    assert trial_identity(EvalConfig(method="taylor", budget=4))["training_format"] is None


def test_two_cfg_w_values_stay_two_trials(tmp_path):
    from ablate.sweep.space import grid_trials, load_space

    path = tmp_path / "g.yaml"
    path.write_text("name: g\nsteps: 8\neval: {seeds: [0, 1]}\nreferences: [8]\n"
                    "grid:\n  - {method: vanilla, sampler: {cfg_w: [0.0, 2.0]}}\n  - {method: taylor, budget: 4}\n")
    trials = grid_trials(load_space(path))
    vanilla = [t for t in trials if t.method == "vanilla"]
    assert sorted((t.cfg_w, t.seed) for t in vanilla) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1)]
    from ablate.methods import run_name

    names = {run_name(asdict(t)) for t in vanilla}
    assert len(names) == 6 and "vanilla-N8-cfg_w=2-s1" in names


def test_a_format_change_reruns_the_trial_and_version_1_runs_are_still_found(tmp_path, monkeypatch):
    """The tracker finds a finished run by today's key; after a training-format change the same trial is not
    found (it reruns). A run logged with a version-1 key (the trial as given; the shortcut's carrying its format)
    is found under today's key, unless its tag shows another format."""
    from ablate import methods
    from ablate.tracking.mlflow_log import Tracker, legacy_trial_key

    tr = Tracker(f"sqlite:///{tmp_path / 'm.db'}", "keys")
    parent = tr.start_parent("keys", "h", {"name": "keys"})
    trials = [asdict(EvalConfig(method=m, budget=4, knobs=k)) for m, k in
              (("residual_shortcut", {}), ("shortcut", {"n_block": 2}), ("taylor", {"order": 2}))]
    for t in trials:
        run = tr.start_child(parent, t, "h")
        desc = {"knobs": methods.knobs(t["method"], t["knobs"]).model_dump(), "label": t["method"], "color": "#000",
                "marker": "o", "rank": 1}
        tr.finish_child(run, {"fid": 1.0}, {}, None, desc)
    done = tr.finished_children(parent)
    assert all(trial_key(t) in done for t in trials)
    monkeypatch.setattr(methods.get("residual_shortcut"), "training_format", 99)
    done = tr.finished_children(parent)
    assert trial_key(trials[0]) not in done and trial_key(trials[2]) in done
    monkeypatch.undo()

    for run in tr.children(parent):  # make them version-1 runs: their old tag, no key version
        t = next(t for t in trials if t["method"] == run.data.tags["ablate.method"])
        tr.client.delete_tag(run.info.run_id, "ablate.key_version")
        tr.client.set_tag(run.info.run_id, "ablate.trial_key", legacy_trial_key(t, 2))
    assert all(trial_key(t) in tr.finished_children(parent) for t in trials)
    shortcut = next(r for r in tr.children(parent) if r.data.tags["ablate.method"] == "shortcut")
    tr.client.set_tag(shortcut.info.run_id, "ablate.trial_key", legacy_trial_key(trials[1], 1))  # format 1
    assert trial_key(trials[1]) not in tr.finished_children(parent)


def test_a_halton_trial_is_its_own_trial_and_learns_from_its_own_trajectories():
    """The unmasking order enters the trial key, the teacher trajectories' key and the unaccelerated reference's key:
    a Halton trial is never paired with, or trained from, a confidence-order run. At its default it leaves every
    key as it was before the setting existed (ablate.store.ADDED_LATER)."""
    from dataclasses import replace

    from ablate.shortcut.trajectories import TrajectoryConfig
    from ablate.store import config_hash

    assert trial_key(EvalConfig(unmasking="halton")) != trial_key(EvalConfig())
    t = TrajectoryConfig()
    assert config_hash(replace(t, unmasking="halton").__dict__) != config_hash(t.__dict__)
    before = {k: v for k, v in t.__dict__.items() if k != "unmasking"}  # the key as made before the setting
    assert config_hash(t.__dict__) == config_hash(before)
    from ablate.methods import build
    from ablate.sampling import SamplerConfig

    m = build("shortcut", steps=16, budget=4)
    m.follow_sampler(SamplerConfig(steps=16, unmasking="halton"))
    assert m.train_cfg.trajectories.unmasking == "halton"
