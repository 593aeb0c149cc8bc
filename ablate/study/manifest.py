"""What made a result: the command, the commit, the store and a digest of its runs, the seeds and sample counts, the
CPU-seconds per stage, the date and the package versions (`manifest.json` in every folder under results/)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Optional


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("migm-ablate", "torch", "torch-fidelity", "mlflow", "ray", "numpy", "scipy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def environment() -> dict:
    from ablate.tracking.mlflow_log import git_commit

    return {"commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "versions": versions()}


def store_digest(uri: str, experiments: list[str]) -> dict:
    """A digest of the runs of these experiments (ids, status, params, tags that describe them, metrics): what the
    outputs were made from, whatever the database file's bytes (SQLite pages move when nothing changes)."""
    from ablate.tracking.mlflow_log import open_client

    client = open_client(uri)
    h = hashlib.sha256()
    n = 0
    for name in sorted(experiments):
        exp = client.get_experiment_by_name(name)
        if exp is None:
            continue
        runs, token = [], None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            runs += page
            token = page.token
            if not token:
                break
        for r in sorted(runs, key=lambda r: r.info.run_id):
            n += 1
            h.update(json.dumps([r.info.run_id, r.info.status, sorted(r.data.params.items()),
                                 sorted((k, v) for k, v in r.data.tags.items() if k.startswith("ablate.")),
                                 sorted(r.data.metrics.items())], default=str).encode())
    return {"runs": n, "sha256": h.hexdigest()}


def write_tool_output(out_file, lines: list[str], command: str, extra: Optional[dict] = None) -> Path:
    """A timing tool's Markdown output (`--out`), with its record in the manifest beside it."""
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return write_tool_manifest(out, command, extra)


def write_tool_manifest(out_file: Path, command: str, extra: Optional[dict] = None) -> Path:
    """A timing tool's record (benchmarks/): one entry per file it wrote, in manifest.json beside it."""
    path = Path(out_file).parent / "manifest.json"
    data = json.loads(path.read_text()) if path.is_file() else {"kind": "tool", "files": {}}
    data.setdefault("files", {})[Path(out_file).name] = {"command": command, **environment(), **(extra or {})}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path
