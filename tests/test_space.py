"""Search spaces: every shipped YAML validates; malformed ones fail with one line naming the field."""

import re
from pathlib import Path

import pytest

from ablate.errors import AblateError
from ablate.sweep.space import grid_trials, load_space

SPACES = sorted(Path(__file__).resolve().parents[1].joinpath("search_spaces").glob("*.yaml"))


def test_shipped_spaces_exist():
    names = {p.stem for p in SPACES}
    assert {"default", "depth", "tokens", "skip_rate", "baselines", "optuna_pareto", "smoke"} <= names


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_shipped_space_validates(path):
    space = load_space(path)
    if space.search == "grid":
        assert grid_trials(space)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_trial_of_a_space_has_its_own_run_name(path):
    """Two trials of one space never share a run name (the MLflow table would not tell them apart)."""
    from dataclasses import asdict

    from ablate.methods import run_name

    space = load_space(path)
    if space.search == "grid":
        names = [run_name(asdict(t)) for t in grid_trials(space)]
        assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_skip_rate_becomes_budget():
    trials = grid_trials(load_space("skip_rate"))
    assert sorted({t.budget for t in trials if t.method == "shortcut"}) == [2, 3, 4, 6, 8]


BAD = {
    "unknown key": ("name: x\ngrid: [{method: vanilla}]\ncolour: red\n", r"^colour: "),
    "wrong type": ("name: x\nsteps: many\ngrid: [{method: vanilla}]\n", r"^steps: "),
    "budget over steps": ("name: x\nsteps: 16\ngrid: [{method: shortcut, budget: [4, 20]}]\n", r"^grid\[0\]\.budget: 20 full steps"),
    "empty grid": ("name: x\ngrid: []\n", r"^grid: empty grid"),
    "empty axis": ("name: x\ngrid: [{method: taylor, budget: [4], knobs: {order: []}}]\n", r"^grid\[0\]: .*knobs.order: empty"),
    "unknown method": ("name: x\ngrid: [{method: warp, budget: 4}]\n", r"^grid\[0\]\.method: unknown method 'warp'"),
    "unknown knob": ("name: x\ngrid: [{method: taylor, budget: 4, knobs: {degree: 2}}]\n", r"^grid\[0\]\.knob: method taylor has no knob"),
    "objective not a measure": ("name: x\nobjectives: [{metric: beauty, mode: max}]\ngrid: [{method: vanilla}]\n", r"^objectives\[0\]\.metric: 'beauty' is not a measure"),
    "bad mode": ("name: x\nobjectives: [{metric: fid, mode: up}]\ngrid: [{method: vanilla}]\n", r"^objectives\[0\]\.mode: "),
    "unknown dataset": ("name: x\ndataset: imagenet\ngrid: [{method: vanilla}]\n", r"^dataset: unknown dataset"),
    "optuna without section": ("name: x\nsearch: optuna\n", r"^optuna: "),
    "bad distribution": ("name: x\nsearch: optuna\noptuna: {budget: {int: [8, 2]}}\n", r"^optuna\.budget: .*low 8 > high 2"),
    "optuna over seeds": ("name: x\nsearch: optuna\neval: {seeds: [0, 1]}\noptuna: {budget: {int: [2, 4]}}\n",
                          r"^eval\.seeds: search: optuna runs each trial on one seed"),
    "not yaml": ("name: [x\n", r"^space: .* is not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_space_names_the_field(case, tmp_path):
    text, pattern = BAD[case]
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(AblateError, match=pattern) as info:
        load_space(path)
    assert "\n" not in str(info.value)


def test_missing_space():
    with pytest.raises(AblateError, match="^space: no search space"):
        load_space("no_such_space")


def test_optuna_budget_within_steps(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("name: o\nsteps: 8\nsearch: optuna\noptuna: {budget: {int: [2, 12]}}\n")
    with pytest.raises(AblateError, match=r"^optuna\.budget: must be integers within 1\.\.8"):
        load_space(path)


HALVING = """
name: h
steps: 8
eval: {{n_samples: 40, batch_size: 10}}
search: halving
{halving}
grid:
  - method: feature_cache
    budget: [2, 3]
"""


@pytest.mark.parametrize("halving,field", [
    ("", "halving"),
    ("halving: {rungs: [20, 10, 40]}", "halving.rungs"),
    ("halving: {rungs: [10, 20]}", "halving.rungs"),
    ("halving: {rungs: [15, 40]}", "halving.rungs"),
    ("halving: {rungs: [10, 40], eta: 1}", "halving.eta"),
    ("halving: {rungs: [10, 40], lower_rungs: some}", "halving.lower_rungs"),
])
def test_bad_halving_settings_fail_with_one_line(tmp_path, halving, field):
    path = tmp_path / "h.yaml"
    path.write_text(HALVING.format(halving=halving))
    with pytest.raises(AblateError, match=f"^{re.escape(field)}:"):
        load_space(path)


def test_lower_rungs_at_its_default_leaves_the_space_as_it_was(tmp_path):
    """`lower_rungs: promotion` is the default and stays out of the space's dump (its hash finds sweeps run before
    the setting existed); `all` is part of it."""
    path = tmp_path / "h.yaml"
    path.write_text(HALVING.format(halving="halving: {rungs: [10, 40], eta: 2}"))
    space = load_space(path)
    assert space.halving.lower_rungs == "promotion" and space.model_dump()["halving"] == {"rungs": [10, 40], "eta": 2}
    path.write_text(HALVING.format(halving="halving: {rungs: [10, 40], eta: 2, lower_rungs: all}"))
    assert load_space(path).model_dump()["halving"]["lower_rungs"] == "all"


def test_halving_promotes_whole_fronts_then_the_most_spread():
    from ablate.sweep.halving import pareto_ranks, promote

    # (fid min, speedup max): a, b, c non-dominated; d dominated by b; e dominated by everything
    res = [("a", {"fid": 10, "speedup": 1}), ("b", {"fid": 12, "speedup": 3}), ("c", {"fid": 20, "speedup": 4}),
           ("d", {"fid": 13, "speedup": 2.5}), ("e", {"fid": 30, "speedup": 0.5})]
    objectives = [("fid", "min"), ("speedup", "max")]
    pts = [(m["fid"], -m["speedup"]) for _, m in res]
    assert pareto_ranks(pts) == [0, 0, 0, 1, 2]
    assert promote(res, objectives, eta=2) == ["a", "b", "c"]  # keep 3: the whole first front
    assert promote(res, objectives, eta=1.5) == ["a", "b", "c", "d"]
    assert set(promote(res, objectives, eta=2.5)) == {"a", "c"}  # keep 2 of the front: its two ends
    assert promote(res + [("f", {"fid": float("nan"), "speedup": 9})], objectives, eta=6) == ["a"]
