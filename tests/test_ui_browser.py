"""The MLflow UI as a new user meets it, in a real headless Chromium (Debian's chromium + chromium-driver, a
fresh profile): `python -m ablate ui` on a smoke sweep's store, the address it prints opens the runs table
with the sweep's row, and its `+` (what the README tells a user to click) shows every trial. Screenshots
land in the test's temp folder."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.test_sweep import REPO, run_cli, sweep_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ui_opens_on_the_runs_table_with_the_trials(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the test extra has it)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "apt-get install chromium chromium-driver (.ci/run does)"
    out = run_cli(["sweep", "smoke", "--no-report"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    port = _free_port()
    ui = subprocess.Popen([sys.executable, "-m", "ablate", "ui", "--no-browser", "--port", str(port)], cwd=REPO,
                          env=sweep_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    browser = None
    try:
        printed = []
        for line in ui.stdout:  # the addresses come before the server starts
            printed.append(line)
            if line.startswith("(the runs table"):
                break
        text = "".join(printed)
        runs = re.search(r"experiment 'smoke': (\S+)", text).group(1)
        assert runs.endswith("/runs") and f"127.0.0.1:{port}" in runs
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
                    f"--user-data-dir={tmp_path / 'profile'}"):
            opts.add_argument(arg)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=opts)
        browser.set_page_load_timeout(120)

        def page_shows(*needles, timeout=90):
            end = time.time() + timeout
            while time.time() < end:
                body = browser.find_element("tag name", "body").text
                if all(n in body for n in needles):
                    return body
                time.sleep(1)
            return browser.find_element("tag name", "body").text

        browser.get(runs)
        body = page_shows("sweep-smoke")
        browser.save_screenshot(str(tmp_path / "runs_table.png"))
        assert "sweep-smoke" in body, body[:2000]  # the runs table, with the sweep's row
        assert "Training runs" in body and "vanilla-N8" not in body  # collapsed until expanded
        expand = browser.find_element(
            "xpath", "//*[contains(text(),'sweep-smoke')]/ancestor::*[@role='row'][1]"
                     "//button[contains(@data-component-id,'runnamecellrenderer')]")
        expand.click()
        names = ["vanilla-N8", "feature_cache-N8-B2", "taylor-N8-B2"]
        body = page_shows(*names)
        browser.save_screenshot(str(tmp_path / "trials.png"))
        assert all(n in body for n in names), body[:2000]

        # The comparison the sweep's description links to: the chart view, FID against speedup, trials shown.
        from ablate.tracking.mlflow_log import open_client

        client = open_client(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
        exp = client.get_experiment_by_name("smoke")
        parent = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("ablate.role") == "sweep"][0]
        note = parent.data.tags["mlflow.note.content"]
        link = re.search(r"(http://\S+viewStateShareKey=\S+compareRunsMode=CHART)", note).group(1)
        browser.get(link.replace("127.0.0.1:5000", f"127.0.0.1:{port}"))
        page_shows("Speed against quality (ablate)")
        browser.find_element("xpath", "//*[contains(text(),'sweep-smoke')]/ancestor::*[@role='row'][1]"
                                      "//button[contains(@data-component-id,'runnamecellrenderer')]").click()
        page_shows("taylor-N8-B2")
        time.sleep(5)  # the charts draw once the trials' metrics are in
        browser.save_screenshot(str(tmp_path / "compare_chart.png"))
        body, source = browser.find_element("tag name", "body").text, browser.page_source
        (tmp_path / "compare_chart.txt").write_text(body)
        assert re.search(r"Speed against quality \(ablate\)\s*\(2\)", body), body[:3000]  # its two charts
        assert "does not exist" not in body
        assert "speedup_flops" in source and "speedup_wall" in source  # their x axes
    finally:
        if browser is not None:
            browser.quit()
        import os
        import signal

        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
