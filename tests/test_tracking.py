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


def test_run_names_tell_training_variants_apart():
    from ablate.accelerators import knobs_of
    from ablate.tracking.mlflow_log import run_name

    default_kl = knobs_of("shortcut")["kl_weight"]
    base = {"method": "shortcut", "steps": 16, "budget": 4}
    assert run_name(base | {"knobs": {"n_block": 1, "kl_weight": default_kl}}) == "shortcut-d1-tok-N16-B4"
    assert run_name(base | {"knobs": {"n_block": 2, "kl_weight": default_kl + 1.5}}) == \
        f"shortcut-d2-tok-kl{default_kl + 1.5:g}-N16-B4"
    assert run_name(base | {"knobs": {"use_tokens": False, "rollout": 1}}) == "shortcut-d1-notok-ro1-N16-B4"
