"""The MLflow store: a fresh SQLite store opened by several processes at once must not race."""

import subprocess
import sys

OPEN = "import sys; from ablate.tracking.mlflow_log import open_client; open_client(sys.argv[1]).search_experiments()"


def test_concurrent_first_use_of_a_sqlite_store(tmp_path):
    """Unlocked, MLflow's schema creation fails here ("table ... already exists", alembic row counts)."""
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, uri], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    assert not errors, errors[0][-2000:]
    assert (tmp_path / "runs" / "mlflow.db").stat().st_size > 0


def test_run_names_tell_variants_apart():
    """One formatter: method, N, B, then each knob given away from its default under its own name, then the seed."""
    from ablate.methods import defaults, run_name

    default_kl = defaults("shortcut")["kl_weight"]
    base = {"method": "shortcut", "steps": 16, "budget": 4}
    assert run_name(base | {"knobs": {"n_block": 1, "kl_weight": default_kl}}) == "shortcut-N16-B4"
    assert run_name(base | {"knobs": {"n_block": 2, "kl_weight": default_kl + 1.5}}) == \
        f"shortcut-N16-B4-kl_weight={default_kl + 1.5}-n_block=2"
    assert run_name(base | {"knobs": {"use_tokens": "false", "rollout": 1}, "seed": 2}) == \
        "shortcut-N16-B4-rollout=1-use_tokens=false-s2"
    assert run_name({"method": "vanilla", "steps": 16, "budget": None, "knobs": {}}) == "vanilla-N16"


def test_experiments_are_model_training_and_ui_prints_the_runs_table(tmp_path, monkeypatch, capsys):
    """MLflow 3 lands on its GenAI overview unless an experiment is tagged as model training: new experiments
    are, old ones are mended (by the Tracker and by `ui`), and `ui` prints each runs-table address."""
    import subprocess as sp

    from ablate.cli import main
    from ablate.tracking.mlflow_log import EXPERIMENT_KIND, MODEL_TRAINING, Tracker, open_client

    monkeypatch.setenv("ABLATE_RUNS", str(tmp_path / "runs"))
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    tr = Tracker(uri, "fresh")
    client = open_client(uri)
    assert client.get_experiment(tr.experiment_id).tags[EXPERIMENT_KIND] == MODEL_TRAINING
    old = client.create_experiment("old")  # as a store of ablate 0.1 holds it: no kind
    assert EXPERIMENT_KIND not in client.get_experiment(old).tags
    parent = tr.start_parent("fresh", "h", {"name": "fresh"})
    tr.describe_parent(parent, "fresh", "python -m ablate sweep fresh", 3)
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    assert "python -m ablate sweep fresh" in note and f"#/experiments/{tr.experiment_id}/runs" in note

    calls = []
    monkeypatch.setattr(sp, "call", lambda cmd, env=None: calls.append(cmd) or 0)
    assert main(["ui", "--no-browser", "--port", "5077"]) == 0
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:5077/#/experiments/{tr.experiment_id}/runs" in out
    assert f"http://127.0.0.1:5077/#/experiments/{old}/runs" in out
    assert calls and calls[0][:4] == [sys.executable, "-m", "mlflow", "ui"] and "5077" in calls[0]  # any PATH
    assert client.get_experiment(old).tags[EXPERIMENT_KIND] == MODEL_TRAINING  # mended


def test_artifacts_live_beside_the_sqlite_database(tmp_path, monkeypatch):
    """A study logged to its own database (results/runs/<study>.db) keeps its artifacts beside it, not under
    $ABLATE_RUNS, which a later session may not have: the samples a report's sheet shows go with the runs."""
    from ablate.tracking.mlflow_log import Tracker, open_client

    monkeypatch.setenv("ABLATE_RUNS", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    for uri, name in ((f"sqlite:///{tmp_path / 'study' / 'a.db'}", "a"), ("sqlite:///study/b.db", "b")):
        tr = Tracker(uri, name)
        location = open_client(uri).get_experiment(tr.experiment_id).artifact_location
        assert location == (tmp_path / "study" / "artifacts" / name).as_uri()


def test_ui_stops_with_one_line_on_a_missing_store_or_a_busy_port(tmp_path, capsys):
    import socket

    from ablate.cli import main

    assert main(["ui", "--no-browser", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no MLflow database there" in capsys.readouterr().err
    from ablate.tracking.mlflow_log import open_client

    open_client(f"sqlite:///{tmp_path / 'm.db'}")
    capsys.readouterr()  # MLflow's own lines of creating the store
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["ui", "--no-browser", "--port", str(port), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --port: {port} is already in use on 127.0.0.1; give another " \
                                              "(--port 5001)"
