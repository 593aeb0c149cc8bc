"""The command line: help, schedule, prepare and sample on a tiny bundle, one-line errors."""

import subprocess
import sys

import pytest
from PIL import Image

from ablate.cli import main


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True, **kw)


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("prepare", "sample", "schedule"):
        assert cmd in out.stdout
        sub = run(cmd, "--help")
        assert sub.returncode == 0 and "usage:" in sub.stdout


def test_schedule_prints_paper_steps():
    out = run("schedule", "--steps", "15", "--budget", "7")
    assert out.returncode == 0 and out.stdout == "0 2 4 6 9 11 13\n"


@pytest.mark.parametrize("steps,budget,field", [("15", "16", "budget"), ("15", "0", "budget"), ("0", "1", "steps")])
def test_schedule_impossible_budget_one_line(steps, budget, field):
    out = run("schedule", "--steps", steps, "--budget", budget)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:")


def test_sample_grid_from_tiny_bundle(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", "--dataset", "digits", "--steps", "4", "--n", "23", "--seed", "1", "--out", str(out)]) == 0
    img = Image.open(out)
    # 10 rows of 28+2 px (+2), 3 columns (23 samples over 10 classes), scaled 2x
    assert img.size == (2 * (3 * 30 + 2), 2 * (10 * 30 + 2))
    assert "class accuracy" in capsys.readouterr().out


def test_sample_is_deterministic(tiny_bundle, tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for path, seed in ((a, "3"), (b, "3"), (c, "4")):
        assert main(["sample", "--dataset", "digits", "--steps", "4", "--n", "20", "--seed", seed, "--out", str(path)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_prepare_verifies_existing_bundle(tiny_bundle, capsys):
    assert main(["prepare", "--dataset", "digits"]) == 0
    assert "verified" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,prefix",
    [
        (["sample", "--steps", "16", "--budget", "4", "--out", "x.png"], "error: budget:"),
        (["sample", "--steps", "16", "--method", "nope", "--out", "x.png"], "error: method:"),
        (["sample", "--steps", "16", "--n", "0", "--out", "x.png"], "error: --n:"),
        (["sample", "--steps", "16", "--dataset", "nowhere", "--out", "x.png"], "error: dataset:"),
        (["prepare", "--dataset", "digits", "--set", "base.depthh=3"], "error: --set:"),
        (["prepare", "--dataset", "digits", "--set", "base.depth=deep"], "error: --set:"),
        (["prepare", "--dataset", "imagenet", "--retrain"], "error: dataset:"),
    ],
)
def test_bad_input_one_line_error(argv, prefix, capsys, ablate_home):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(prefix), err
