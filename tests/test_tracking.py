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
