"""Where cached products live. `ABLATE_HOME` moves everything (e.g. to a shared path on a cluster)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_WEIGHTS = PACKAGE_DIR / "weights"


def home() -> Path:
    """Root of the local cache (default ~/.cache/migm-ablate)."""
    root = os.environ.get("ABLATE_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "migm-ablate"
    return path


def weights_dir(dataset: str) -> Path:
    """Cache folder of the trained tokenizer/base/classifier of one dataset."""
    safe = dataset.replace("/", "_").replace(":", "_").replace("\\", "_")
    return home() / "weights" / safe
