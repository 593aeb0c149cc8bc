"""The shape of the code: one direction of dependencies and no import loop (the contract in pyproject.toml).

Checked against a broken version once: a module-level `from ablate.methods.vanilla import Vanilla` in
ablate/sampling/sampler.py (the loop this project once had) made both tests fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_dependencies_point_one_way():
    """import-linter's layers contract: data -> tokenizer -> models -> ... -> analysis -> cli, nothing upward."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and "1 kept, 0 broken" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]


def test_no_import_loop():
    """No module reaches itself through the imports (type-only imports excluded). Importing `a.b.c` runs the
    package `a.b` first, so that counts as an import of `a.b` too, except for a module's own packages (a
    package's __init__ importing its modules, as the methods registry does, is no loop)."""
    import grimp

    graph = grimp.build_graph("ablate", "analysis", exclude_type_checking_imports=True)
    roots = {"ablate", "analysis"}

    def parents(m):
        parts = m.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    edges = {}
    for m in graph.modules:
        out = set()
        for imp in graph.find_modules_directly_imported_by(m):
            out |= {imp} | (parents(imp) - roots - parents(m))
        edges[m] = out - {m}

    loops, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(edges.get(m, ())):
            if state.get(n) == "open":
                loops.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not loops, loops[:5]


@pytest.mark.parametrize("path", ["README.md", *[str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")]])
def test_docs_point_only_inside_the_repository(path):
    """A user has only this repository: no pointers to documents beside it or to the tracker's issue numbers."""
    import re

    text = (ROOT / path).read_text()
    assert "../shared" not in text and "PAPER.md" not in text and "DESIGN.md" not in text, path
    assert not re.search(r"[Ii]ssue #?\d", text), path


def test_the_sampler_imports_no_method_not_even_for_types():
    """The sampler talks to methods through sampling/policy.py's StepPolicy only: no import of ablate.methods
    from ablate.sampling, type-only ones included (checked against a broken version once: the former
    `if TYPE_CHECKING: from ablate.methods.base import Method` in sampler.py made it fail)."""
    import grimp

    graph = grimp.build_graph("ablate", exclude_type_checking_imports=False, cache_dir=None)  # no stale cache
    assert not graph.chain_exists(importer="ablate.sampling", imported="ablate.methods", as_packages=True)
