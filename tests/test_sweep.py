"""Sweeps end to end: Ray Tune runs the trials, MLflow holds one FINISHED child run per trial.

The smoke sweep runs in the fast suite; killing and resuming, and the cluster path (a `ray start`
head and an `mlflow server` on 127.0.0.1), are marked slow.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def sweep_env(tmp_path) -> dict:
    env = dict(os.environ)
    env.update(ABLATE_RUNS=str(tmp_path / "runs"), ABLATE_PROGRESS="0", RAY_AUTH_MODE="disabled",
               ABLATE_HOME=os.environ["ABLATE_HOME"])
    return env


def run_cli(args, tmp_path, timeout=900, **kw):
    return subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True,
                          env=sweep_env(tmp_path), timeout=timeout, cwd=REPO, **kw)


def client_for(uri):
    from ablate.tracking.mlflow_log import open_client

    return open_client(uri)  # locked first use: the driver may be creating the same store right now


def runs_of(uri, experiment):
    c = client_for(uri)
    exp = c.get_experiment_by_name(experiment)
    return c, c.search_runs([exp.experiment_id], max_results=1000) if exp else []


def write_space(tmp_path, text, name="space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SMALL = """
name: {name}
dataset: mnist
steps: 6
eval: {{n_samples: 20, batch_size: 20, seeds: [0]}}
resources: {{cpu: 1}}
objectives: [{{metric: fid, mode: min}}, {{metric: speedup_flops, mode: max}}]
grid:
{grid}
"""


def test_smoke_sweep_end_to_end(tmp_path):
    out = run_cli(["sweep", "smoke", "--max-concurrent", "2"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    c, runs = runs_of(uri, "smoke")
    parents = [r for r in runs if r.data.tags.get("ablate.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("ablate.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == ["feature_cache-N8-B2", "taylor-N8-B2", "vanilla-N8"]
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        m = r.data.metrics
        for key in ("fid", "kid_mean", "precision", "recall", "class_acc", "latency_ms_per_image",
                    "gflops_per_image", "speedup_flops", "speedup_wall", "ideal_speedup"):
            assert key in m, (r.info.run_name, key)
        assert r.data.params["method"] == r.data.tags["ablate.method"]
        assert r.data.tags["ablate.git_commit"] and r.data.tags["ablate.config_hash"]
        arts = {a.path for a in c.list_artifacts(r.info.run_id)}
        assert {"samples.png", "feature_error.png", "trial_config.json"} <= arts
        history = c.get_metric_history(r.info.run_id, "feature_mse_step")
        assert sorted(h.step for h in history) == list(range(8))  # one value per step of N = 8
        assert abs(m["feature_mse"] - sum(h.value for h in history) / 8) < 1e-6  # the measure is their mean
    fc = next(r for r in children if r.info.run_name.startswith("feature_cache"))
    assert fc.data.metrics["speedup_flops"] > 2.5  # 2 of 8 steps run the base model
    assert "knobs.order" in next(r for r in children if r.info.run_name.startswith("taylor")).data.params


def test_failed_trial_is_recorded_and_sweep_goes_on(tmp_path):
    grid = ("  - method: feature_cache\n    budget: 2\n"
            "  - method: shortcut\n    budget: 2\n    knobs: {checkpoint: /no/such/shortcut}\n")
    space = write_space(tmp_path, SMALL.format(name="failing", grid=grid))
    out = run_cli(["sweep", str(space)], tmp_path)
    # everything it could run ran; then exit 1 with a last line saying how many failed and where their errors are
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1].startswith("1 trial(s) FAILED (their runs hold the error: tag "
                                                          "ablate.error"), out.stderr[-2000:]
    _, runs = runs_of(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", "failing")
    by_name = {r.info.run_name: r for r in runs if r.data.tags.get("ablate.role") == "trial"}
    assert by_name["feature_cache-N6-B2"].info.status == "FINISHED"
    failed = by_name["shortcut-N6-B2"]
    assert failed.info.status == "FAILED" and "checkpoint" in failed.data.tags["ablate.error"]


def test_failed_trials_exit_1_unless_allowed(capsys):
    from ablate.cli import _failed_exit

    assert _failed_exit(0, False) == 0
    assert _failed_exit(2, False) == 1 and "2 trial(s) FAILED" in capsys.readouterr().err
    assert _failed_exit(2, True) == 0 and "exit 0" in capsys.readouterr().err


def test_an_unreachable_tracking_server_or_ray_head_stops_at_once(tmp_path):
    """A server that is not there (or a typo in its address) is one line within seconds, not minutes of retries
    that look like a frozen sweep; nothing is sampled or logged first."""
    port = free_port()  # nothing listens there
    t = time.perf_counter()
    out = run_cli(["sweep", "smoke", "--tracking-uri", f"http://127.0.0.1:{port}"], tmp_path, timeout=60)
    assert out.returncode == 2 and time.perf_counter() - t < 45
    assert out.stderr.strip() == (f"error: tracking uri http://127.0.0.1:{port}: no MLflow server answers there "
                                  "within 5 s ([Errno 111] Connection refused); start it, or fix --tracking-uri")
    out = run_cli(["sweep", "smoke", "--ray-address", f"127.0.0.1:{port}"], tmp_path, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith(f"error: --ray-address 127.0.0.1:{port}: no Ray cluster")
    assert "\n" not in out.stderr.strip() and not (tmp_path / "runs").exists()
    out = run_cli(["report", "--experiment", "x", "--tracking-uri", f"http://127.0.0.1:{port}"], tmp_path, timeout=60)
    assert out.returncode == 2 and "no MLflow server answers there" in out.stderr


@pytest.mark.parametrize(
    "text,field",
    [("name: bad\ngrid: [{method: vanilla}]\nbogus: 1\n", "bogus"),
     ("name: bad\nsteps: 4\ngrid: [{method: taylor, budget: 9}]\n", "grid[0].budget")],
)
def test_malformed_space_creates_no_run(tmp_path, text, field):
    out = run_cli(["sweep", str(write_space(tmp_path, text))], tmp_path, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}")
    assert not (tmp_path / "runs").exists()


def kill_after_finished(proc, tmp_path, uri, experiment, n, timeout=600):
    """SIGKILL the sweep driver's process group once n trial runs of `experiment` are FINISHED."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(2)
        if (tmp_path / "runs" / "mlflow.db").exists():
            _, runs = runs_of(uri, experiment)
            if sum(r.info.status == "FINISHED" and r.data.tags.get("ablate.role") == "trial" for r in runs) >= n:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_resume_after_kill(tmp_path):
    grid = "  - method: feature_cache\n    budget: [2, 3]\n  - method: taylor\n    budget: [2, 3]\n"
    space = write_space(tmp_path, SMALL.format(name="resume", grid=grid))
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "ablate", "sweep", str(space), "--max-concurrent", "1"],
                            env=sweep_env(tmp_path), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kill_after_finished(proc, tmp_path, uri, "resume", 2)
    out = run_cli(["sweep", str(space), "--resume"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    _, runs = runs_of(uri, "resume")
    parents = [r for r in runs if r.data.tags.get("ablate.role") == "sweep"]
    finished = [r.info.run_name for r in runs if r.data.tags.get("ablate.role") == "trial" and r.info.status == "FINISHED"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(finished) == sorted(["vanilla-N6", "feature_cache-N6-B2", "feature_cache-N6-B3",
                                       "taylor-N6-B2", "taylor-N6-B3"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ray_head(port: int, env: dict) -> subprocess.Popen:
    """A Ray head of this test's own: `ray start --block` in a session of its own, on its own port and temp folder,
    so stopping it (stop_group) touches nothing else on the machine; `ray stop` would stop every Ray here."""
    import tempfile

    temp = tempfile.mkdtemp(prefix="/tmp/rt")  # short: Ray's socket paths have a length limit
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(180):
        if answers(port):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        time.sleep(1)
    stop_group(proc)
    raise RuntimeError("the Ray head did not come up in 180 s")


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process this test started and everything in its session, and nothing else."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_cluster_path(tmp_path):
    """A Ray head and an `mlflow server`, both on 127.0.0.1 and both this test's own; the sweep joins both. A Ray
    started outside the test (the bystander: a user's own sweep) is still running after it."""
    env = sweep_env(tmp_path)
    bin_dir = Path(sys.executable).parent
    bystander_port, ray_port, mlflow_port = free_port(), free_port(), free_port()
    bystander = start_ray_head(bystander_port, env)
    head = server = None
    try:
        head = start_ray_head(ray_port, env)
        server = subprocess.Popen(
            [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
             "--default-artifact-root", (tmp_path / "server-artifacts").as_uri()],
            env=dict(env, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{mlflow_port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        out = run_cli(["sweep", "smoke", "--ray-address", f"127.0.0.1:{ray_port}", "--tracking-uri", url,
                       "--experiment", "cluster-smoke"], tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        req = urllib.request.Request(url + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=cluster-smoke")
        exp_id = json.load(urllib.request.urlopen(req))["experiment"]["experiment_id"]
        body = json.dumps({"experiment_ids": [exp_id], "max_results": 100}).encode()
        req = urllib.request.Request(url + "/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
        runs = json.load(urllib.request.urlopen(req))["runs"]
        statuses = sorted(r["info"]["status"] for r in runs)
        assert statuses == ["FINISHED"] * 4  # the parent and three trials
    finally:
        for proc in (server, head):
            if proc is not None:
                stop_group(proc)
    try:
        assert not answers(ray_port)  # its own head is gone
        assert bystander.poll() is None and answers(bystander_port)  # the one it did not start still runs
    finally:
        stop_group(bystander)


OPTUNA = """
name: optuna_smoke
dataset: mnist
steps: 6
eval: {n_samples: 20, batch_size: 20, seeds: [0]}
resources: {cpu: 1}
search: optuna
objectives: [{metric: fid, mode: min}, {metric: speedup_flops, mode: max}]
references: [6]
optuna:
  method: taylor
  num_samples: 3
  budget: {int: [2, 5]}
  knobs:
    order: {choice: [0, 1, 2]}
"""


@pytest.mark.slow
def test_optuna_multi_objective_sweep(tmp_path):
    """search: optuna runs Ray Tune's OptunaSearch with two objectives; every suggestion is a run."""
    space = write_space(tmp_path, OPTUNA)
    out = run_cli(["sweep", str(space), "--max-concurrent", "1", "--no-report"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    c, runs = runs_of(uri, "optuna_smoke")
    children = [r for r in runs if r.data.tags.get("ablate.role") == "trial"]
    taylor = [r for r in children if r.data.params["method"] == "taylor"]
    assert len(taylor) == 3 and all(r.info.status == "FINISHED" for r in taylor)
    for r in taylor:
        assert 2 <= int(r.data.params["budget"]) <= 5 and r.data.params["knobs.order"] in {"0", "1", "2"}
        assert {"fid", "speedup_flops"} <= set(r.data.metrics)
    assert any(r.data.params["method"] == "vanilla" for r in children)  # the reference for speedups


HALVING = """
name: {name}
dataset: mnist
steps: 6
eval: {{n_samples: 40, batch_size: 20, seeds: [0]}}
resources: {{cpu: 1}}
search: halving
halving: {{rungs: [20, 40], eta: 2}}
objectives: [{{metric: fid, mode: min}}, {{metric: speedup_flops, mode: max}}]
grid:
  - method: feature_cache
    budget: [2, 3]
  - method: taylor
    budget: [2, 3]
"""


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_halving_sweep_resumes_without_redoing_a_finished_rung(tmp_path):
    """Killed in its first rung and resumed: every configuration ran once on 20 samples, the best half (Pareto
    rank within the rung) once more on 40, reusing their first batch; no (trial, rung) has two FINISHED runs."""
    space = write_space(tmp_path, HALVING.format(name="halving"))
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "ablate", "sweep", str(space), "--max-concurrent", "1"],
                            env=sweep_env(tmp_path), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kill_after_finished(proc, tmp_path, uri, "halving", 2)  # the reference and one rung-1 trial
    out = run_cli(["sweep", str(space), "--resume"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    _, runs = runs_of(uri, "halving")
    trials = [r for r in runs if r.data.tags.get("ablate.role") == "trial" and r.info.status == "FINISHED"]
    keys = [r.data.tags["ablate.trial_key"] for r in trials]
    assert len(keys) == len(set(keys))  # no finished rung ran twice
    by_n = {}
    for r in trials:
        by_n.setdefault(r.data.params["n_samples"], []).append(r)
    rung1 = sorted(r.info.run_name for r in by_n["20"])
    assert rung1 == ["feature_cache-N6-B2", "feature_cache-N6-B3", "taylor-N6-B2", "taylor-N6-B3"]
    rung2 = [r for r in by_n["40"] if r.info.run_name != "vanilla-N6"]
    assert len(rung2) == 2 and {r.info.run_name for r in rung2} <= set(rung1)
    assert all(r.data.metrics["sampled_images"] == 20 for r in rung2)  # the first batch came from rung 1
    # rung 1 computed only what promotion compares; the last rung every measure
    assert all(r.data.params["measures"] == "fid,speedup_flops" and "kid_mean" not in r.data.metrics
               and "fid" in r.data.metrics for r in by_n["20"])
    assert all("kid_mean" in r.data.metrics and "feature_mse" in r.data.metrics for r in rung2)
    # the promoted pair is the one promote() picks from the rung's numbers
    from ablate.sweep.halving import promote

    res = [(r.info.run_name, dict(r.data.metrics)) for r in by_n["20"]]
    assert sorted(promote(res, [("fid", "min"), ("speedup_flops", "max")], 2)) == sorted(r.info.run_name for r in rung2)
    # tables read the last rung only; the search-cost check reads every rung (what the sweep spent)
    from analysis.runs import load_runs

    assert set(load_runs(["halving"], [uri], with_steps=False)["n_samples"].astype(int)) == {40}
    assert len(load_runs(["halving"], [uri], with_steps=False, every_run=True)) == len(trials)
