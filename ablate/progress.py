"""Progress bars that stay quiet in CI logs and tests (ABLATE_PROGRESS=0 turns them off)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(iterable, desc: str, **kw):
    disable = os.environ.get("ABLATE_PROGRESS", "1") == "0"
    return tqdm(iterable, desc=desc, disable=disable, file=sys.stderr, dynamic_ncols=True, mininterval=1.0, **kw)
