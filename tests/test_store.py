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
