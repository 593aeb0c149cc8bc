"""The MLflow UI as a new user meets it, in a real headless Chromium (Debian's chromium + chromium-driver, a fresh
profile): `python -m ablate ui`, started from a shell whose PATH lacks the venv, on a smoke sweep's store. The
address it prints shows every trial of the newest sweep as a row with its method, B, seed and FID, without a click;
the comparison address draws points in both charts at once. MLflow's Assistant panel, which opens by itself the
first time, is closed first, as the README tells a user to. Screenshots land in the test's temp folder.

Checked against the code before the shared views once: it failed, its `ui` printing the plain runs address (where
the sweep's row is collapsed and the charts have no data until a user expands it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_sweep import REPO, run_cli, sweep_env

TRIALS = ["vanilla-N8", "feature_cache-N8-B2", "taylor-N8-B2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ui_shows_the_trials_and_draws_the_comparison_without_a_click(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the test extra has it)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "apt-get install chromium chromium-driver (.ci/run does)"
    out = run_cli(["sweep", "smoke", "--no-report"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    port = _free_port()
    env = sweep_env(tmp_path)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    ui = subprocess.Popen([sys.executable, "-m", "ablate", "ui", "--no-browser", "--port", str(port)], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    browser = None
    try:
        printed = []
        for line in ui.stdout:  # the addresses come before the server starts
            printed.append(line)
            if line.startswith("("):  # the line after the addresses
                break
        text = "".join(printed)
        trials = re.search(r"experiment 'smoke': (\S+)", text).group(1)
        assert f"127.0.0.1:{port}" in trials and "viewStateShareKey=" in trials, text
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert ui.poll() is None, "the UI server exited: " + "".join(printed)[-2000:]
                time.sleep(1)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
                    f"--user-data-dir={tmp_path / 'profile'}"):
            opts.add_argument(arg)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=opts)
        browser.set_page_load_timeout(120)

        def body() -> str:
            return browser.find_element("tag name", "body").text

        def wait_for(test, timeout=90):
            end = time.time() + timeout
            while time.time() < end:
                if test():
                    return True
                time.sleep(1)
            return False

        def close_assistant():
            """The Assistant panel opens by itself on a first visit to a local server: close it with its X, as the
            README says, and see it gone."""
            x = "[data-component-id='mlflow.assistant.chat_panel.close']"
            wait_for(lambda: browser.find_elements("css selector", x), timeout=15)
            for button in browser.find_elements("css selector", x):
                if button.is_displayed():
                    button.click()
            assert wait_for(lambda: not [b for b in browser.find_elements("css selector", x) if b.is_displayed()],
                            timeout=15)

        browser.get(trials)
        wait_for(lambda: all(n in body() for n in TRIALS))
        close_assistant()
        browser.save_screenshot(str(tmp_path / "trials.png"))
        page = body()
        (tmp_path / "trials.txt").write_text(page)
        assert all(n in page for n in TRIALS), page[:3000]  # every trial a row: nothing to expand
        assert "sweep-smoke" not in page  # the sweep's own row is not among them
        for column in ("method", "budget", "seed", "fid", "speedup_flops", "speedup_wall", "token_agreement"):
            assert column in page, column
        fid = re.search(r"taylor-N8-B2.*?\n", page, re.S)
        assert fid, page[:2000]

        browser.get(trials.replace("-trials", "-compare") + "&compareRunsMode=CHART")
        wait_for(lambda: len(browser.find_elements("css selector", ".js-plotly-plot .scatterlayer .point")) >= 6)
        browser.save_screenshot(str(tmp_path / "compare.png"))
        page = body()
        (tmp_path / "compare.txt").write_text(page)
        assert "No chart data available" not in page and "does not exist" not in page, page[:3000]
        charts = browser.find_elements("css selector", ".js-plotly-plot")
        points = [len(c.find_elements("css selector", ".scatterlayer .point")) for c in charts]
        assert len([p for p in points if p >= 3]) >= 2, points  # both charts, a point per setting
    finally:
        if browser is not None:
            browser.quit()
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
