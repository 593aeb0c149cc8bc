"""The content-addressed store: built once per config, damage detected and rebuilt."""

import threading

from ablate import store


def counting_builder():
    """A build function that writes one file and records each call."""
    calls = []

    def build(folder):
        calls.append(1)
        (folder / "x.bin").write_bytes(b"abc")

    return build, calls


def test_built_once_then_served(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path))
    build, calls = counting_builder()

    a = store.get_or_build("thing", {"k": 1}, build)
    b = store.get_or_build("thing", {"k": 1}, build)
    c = store.get_or_build("thing", {"k": 2}, build)
    assert a == b != c and len(calls) == 2 and (a / "x.bin").read_bytes() == b"abc"


def test_damaged_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path))
    build, calls = counting_builder()
    logs = []

    folder = store.get_or_build("thing", {"k": 1}, build)
    (folder / "x.bin").write_bytes(b"abd")
    store.get_or_build("thing", {"k": 1}, build, log=logs.append)
    assert len(calls) == 2 and "rebuilding" in logs[0] and (folder / "x.bin").read_bytes() == b"abc"


def test_concurrent_builders_build_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_STORE", str(tmp_path))
    build, calls = counting_builder()

    threads = [threading.Thread(target=store.get_or_build, args=("thing", {"k": 3}, build)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


def test_key_is_canonical():
    assert store.config_hash({"a": 1, "b": 2}) == store.config_hash({"b": 2, "a": 1})


def test_shipped_seed_entry_is_served_and_a_damaged_one_ignored(tmp_path, monkeypatch):
    """A seed entry shipped under weights/<dataset>/store/ serves without building; damage falls back."""
    import shutil

    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "store"))
    build, calls = counting_builder()
    made = store.get_or_build("thing", {"k": 1}, build)
    seeds = tmp_path / "weights"
    seed = seeds / "mnist" / "store" / "thing" / made.name
    shutil.copytree(made, seed)
    shutil.rmtree(tmp_path / "store")
    monkeypatch.setattr(store, "SEEDS", seeds)

    assert store.get_or_build("thing", {"k": 1}, build) == seed and len(calls) == 1
    (seed / "x.bin").write_bytes(b"abd")
    rebuilt = store.get_or_build("thing", {"k": 1}, build)
    assert rebuilt != seed and len(calls) == 2 and (seed / "x.bin").read_bytes() == b"abd"  # seed untouched


def test_default_shortcut_ships_for_the_shipped_base(tmp_path, monkeypatch):
    """The main job's shortcuts (default knobs, and MSE only) are shipped seeds for the shipped MNIST base, for
    the current training format: an empty store serves them without training."""
    from ablate import methods, pretrained
    from ablate.shortcut.train import TRAINING_FORMAT

    monkeypatch.setenv("ABLATE_STORE", str(tmp_path / "empty"))
    base = pretrained.load("mnist").base
    for knobs in ({}, {"kl_weight": 0.0}):
        acc = methods.build("shortcut", steps=16, budget=4, **knobs)
        logs = []
        acc.prepare(base, log=logs.append)
        assert logs == [] and acc.meta["format"] == TRAINING_FORMAT, (knobs, logs)
