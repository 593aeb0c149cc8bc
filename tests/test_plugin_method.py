"""A method written outside the package, with no edit anywhere in `ablate/`, goes through a real Ray sweep,
MLflow and `report`, and comes out with its own label, knobs and point on the Pareto data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.test_sweep import runs_of, sweep_env

TOY = '''
"""A toy method: at a skipped step, the last full feature shrunk towards zero by `shrink`."""
from pydantic import Field

from ablate.methods import Knobs, Method


class Shrink(Method):
    name = "toy_shrink"
    label = "Toy shrink"
    color = "#123456"
    marker = "h"

    class Knobs(Knobs):
        shrink: float = Field(0.9, gt=0, le=1, description="factor on the cached feature at a skipped step")

    def begin(self, model, batch_size):
        self.feature = None

    def observe(self, state, logits, feature):
        self.feature = feature

    def skip_step(self, model, state):
        f = self.feature * self.knobs.shrink
        return model.head(f), f
'''

SPACE = """
name: plugin
dataset: mnist
steps: 6
eval: {n_samples: 20, batch_size: 20, seeds: [0]}
resources: {cpu: 1}
objectives: [{metric: fid, mode: min}, {metric: speedup_flops, mode: max}]
references: [6]
grid:
  - method: toy_plugin:Shrink
    budget: [2, 3]
    knobs: {shrink: 0.8}
"""


@pytest.mark.slow
def test_a_method_of_ones_own_module_runs_through_sweep_and_report(tmp_path):
    (tmp_path / "toy_plugin.py").write_text(TOY)  # outside ablate/, not on the package's path
    (tmp_path / "plugin.yaml").write_text(SPACE)
    # The driver runs in the plugin's folder (so `python -m` finds the module there); Ray's workers start in
    # folders of their own and import it only because the sweep gives them its folder.
    res = subprocess.run([sys.executable, "-m", "ablate", "sweep", "plugin.yaml"], cwd=tmp_path, capture_output=True,
                         text=True, env=sweep_env(tmp_path), timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    _, runs = runs_of(uri, "plugin")
    trials = {r.info.run_name: r for r in runs if r.data.tags.get("ablate.role") == "trial"}
    assert sorted(trials) == ["toy_shrink-N6-B2-shrink=0.8", "toy_shrink-N6-B3-shrink=0.8", "vanilla-N6"], \
        {n: r.data.tags.get("ablate.error") for n, r in trials.items()}
    toy = trials["toy_shrink-N6-B2-shrink=0.8"]
    assert toy.info.status == "FINISHED", toy.data.tags.get("ablate.error")
    assert toy.data.tags["ablate.method"] == "toy_shrink" and toy.data.tags["ablate.label"] == "Toy shrink"
    assert toy.data.tags["ablate.color"] == "#123456" and toy.data.params["knobs.shrink"] == "0.8"

    # The report, in a process that never imports the plugin: label, knob and points come from MLflow alone.
    out = tmp_path / "report"
    res = subprocess.run([sys.executable, "-m", "ablate", "report", "--experiment", "plugin", "--tracking-uri", uri,
                          "--out", str(out)], cwd=tmp_path.parent, capture_output=True, text=True,
                         env=sweep_env(tmp_path), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    pareto = json.loads((out / "pareto.json").read_text())
    assert "Toy shrink" in pareto["hypervolume"], pareto["hypervolume"].keys()
    summary = (out / "summary.md").read_text()
    assert "| Toy shrink | 2 |" in summary and "| Toy shrink | 3 |" in summary
    csv = (out / "runs.csv").read_text()
    assert "toy_shrink" in csv and "shrink" in csv.splitlines()[0]
