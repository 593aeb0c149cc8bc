"""Content-addressed store of expensive products (trajectories, trained shortcuts, ...).

An entry lives in <root>/<kind>/<key>/ where key = sha256 of the canonical JSON of the config that
made it. A `DONE.json` with every file's sha256 marks it complete: a missing or damaged file means
the entry is rebuilt. A file lock makes concurrent builders of one entry build it once.
Root: $ABLATE_STORE, else $ABLATE_HOME/store (put it on a shared path for a cluster).

Read-only seed entries ship inside the package (ablate/weights/<dataset>/store/<kind>/<key>/, same
layout): the default shortcut ships there, so the main job never trains on a fresh machine. A seed
entry is used only when its checksums hold; otherwise the writable store builds as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Optional

from filelock import FileLock

from ablate.hashing import file_digest
from ablate.paths import home


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


# Settings added after keys were first made, at the value every earlier key implied: left out of every key while at
# it, so that a store entry, a trial key or a space hash made before them still matches (one place, for every key).
ADDED_LATER = {"unmasking": "confidence", "schedule": "paper", "measures": "all"}


def stable(obj):
    """`obj` without the ADDED_LATER settings that hold their implied value, at any depth."""
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if not (k in ADDED_LATER and v == ADDED_LATER[k])}
    if isinstance(obj, (list, tuple)):
        return [stable(v) for v in obj]
    return obj


def config_hash(obj) -> str:
    return hashlib.sha256(canonical(stable(obj)).encode()).hexdigest()


def root() -> Path:
    env = os.environ.get("ABLATE_STORE")
    return Path(env).expanduser() if env else home() / "store"


def _file_sha(path: Path) -> str:
    return file_digest(path, "sha256")


def _intact(folder: Path) -> bool:
    done = folder / "DONE.json"
    if not done.is_file():
        return False
    try:
        files = json.loads(done.read_text())["files"]
    except (OSError, ValueError, KeyError):
        return False
    return all((folder / n).is_file() and _file_sha(folder / n) == sha for n, sha in files.items())


SEEDS = Path(__file__).resolve().parent / "weights"


def seed_entry(kind: str, key: str) -> Optional[Path]:
    """An intact shipped entry for this kind and key, if one exists."""
    for folder in sorted(SEEDS.glob(f"*/store/{kind}/{key}")):
        if _intact(folder):
            return folder
    return None


def lookup(kind: str, config: dict) -> Optional[Path]:
    """The intact entry for `config` (shipped or in the store), or None; builds nothing."""
    key = config_hash(config)[:20]
    seeded = seed_entry(kind, key)
    if seeded is not None:
        return seeded
    folder = root() / kind / key
    return folder if _intact(folder) else None


def get_or_build(kind: str, config: dict, build: Callable[[Path], None], log=print) -> Path:
    """The folder of the entry for `config`: a shipped seed, else the store's, built with `build(folder)`
    when absent or damaged."""
    key = config_hash(config)[:20]
    seeded = seed_entry(kind, key)
    if seeded is not None:
        return seeded
    folder = root() / kind / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if _intact(folder):
            return folder
        if folder.exists():
            log(f"store: {kind}/{key} is incomplete or damaged; rebuilding")
            shutil.rmtree(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        build(tmp)
        files = {p.name: _file_sha(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "CONFIG.json").write_text(canonical(config))
        (tmp / "DONE.json").write_text(json.dumps({"kind": kind, "files": files}, indent=2))
        tmp.rename(folder)
    return folder
