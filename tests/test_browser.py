"""Notebook 03 in a real browser: JupyterLab headless, Debian's Chromium driven by selenium through chromedriver.

nbclient (tests/test_notebooks.py) proves the code runs; only a browser shows that what a learner sees renders:
the explorer is a live ipywidgets view (a <select> that answers a change through the kernel), not the text
``VBox(...)``, and the level histogram is an <img> of a matplotlib PNG. The server gets a free port, no token and
a temporary root holding a copy of the notebook; its kernel runs the `tiny` profile. A screenshot is saved under
pytest's tmp_path (and to $RRTF_BROWSER_SCREENSHOT when set, e.g. docs/executed/03_browser.png).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "03_ranking.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
RUN_ALL_SECONDS = int(os.environ.get("RRTF_BROWSER_RUN_SECONDS", "420"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
        "apt-get install -y chromium chromium-driver (.ci/run does it when missing)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extras)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {seconds:.0f} s")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a free port, token disabled, root = a temporary folder holding a copy of notebook 03."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port = _free_port()
    env = {**os.environ, "RRTF_PROFILE": "tiny", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    env.pop("RRTF_STATIC", None)  # the point is the live widget
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")  # no user settings, no workspace restored
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings := tmp_path / "lab-settings")
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')  # every cell in the DOM, not only those in view
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "notified about Jupyter news?" toast over the screenshot
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status", 120, server)
        yield f"http://127.0.0.1:{port}", root, tmp_path / "lab.log"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1800", f"--user-data-dir={tmp_path / 'chromium'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # no driver download
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# The open notebook panel and its kernel (shell.currentWidget follows focus, which headless Chromium lacks at first).
_NOTEBOOK = """
const app = window.jupyterapp;
const w = app && [...app.shell.widgets('main')].find(x => x.sessionContext && x.content && x.content.model);
if (!w) return null;
const k = w.sessionContext.session && w.sessionContext.session.kernel;
"""
_STATE = (
    _NOTEBOOK
    + """
const model = w.content.model;
let cells = 0, done = 0;
const errors = [];
for (let i = 0; i < model.cells.length; i++) {
  const cell = model.cells.get(i);
  if (cell.type !== 'code') continue;
  cells += 1;
  if (cell.executionCount !== null) done += 1;
  for (let j = 0; j < cell.outputs.length; j++) {
    const out = cell.outputs.get(j).toJSON();
    if (out.output_type === 'error') errors.push(out.ename + ': ' + out.evalue);
  }
}
return {cells: cells, done: done, idle: !!k && k.status === 'idle', errors: errors};
"""
)


def _wait(driver, predicate, seconds: float, what: str, poll: float = 1.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"gave up after {seconds:.0f} s waiting for {what}")


def test_notebook_03_runs_in_chromium_and_its_widget_and_plot_render(lab, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, root, lab_log = lab
    browser.get(f"{url}/lab/tree/{NOTEBOOK.name}")
    _wait(
        browser,
        lambda: browser.execute_script(_NOTEBOOK + "return !!(k && k.status === 'idle' && w.content.widgets.length);"),
        120,
        "the notebook to open with an idle kernel",
    )
    browser.find_element(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell").click()  # focus: commands act on it
    _wait(browser, lambda: browser.execute_script(_NOTEBOOK + "return w === window.jupyterapp.shell.currentWidget;"),
          10, "the notebook to take focus")  # fmt: skip
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def finished():
        state = browser.execute_script(_STATE) or {"cells": 0, "errors": []}
        assert not state["errors"], f"a cell failed in the browser: {state['errors']}"
        return state if state["cells"] and state["idle"] and state["done"] == state["cells"] else None

    try:
        state = _wait(browser, finished, RUN_ALL_SECONDS, "every code cell to run", poll=2)
    except TimeoutError:
        browser.save_screenshot(str(tmp_path / "03_browser_timeout.png"))
        raise
    assert state["cells"] >= 5

    # The explorer: a live dropdown (a <select> inside an ipywidgets view), not the text "VBox(...)".
    explorer = browser.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-vbox:has(.widget-dropdown)")
    select = explorer.find_element(By.CSS_SELECTOR, ".widget-dropdown select")
    html_view = explorer.find_element(By.CSS_SELECTOR, ".widget-html-content")  # (progress bars are HTML too)
    assert "#1 " in html_view.text and "score" in html_view.text
    outputs_text = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
    assert "VBox(" not in outputs_text
    options = Select(select).options
    if len(options) > 1:  # a change goes through the kernel and comes back as new HTML
        before = html_view.get_attribute("innerHTML")
        Select(select).select_by_index(1)
        _wait(browser, lambda: html_view.get_attribute("innerHTML") != before, 30, "the explorer to show problem 2")

    # A plot: an <img> holding a matplotlib PNG that the browser decoded.
    images = browser.find_elements(By.CSS_SELECTOR, ".jp-RenderedImage img")
    decoded = [
        img
        for img in images
        if (img.get_attribute("src") or "").startswith("data:image/png")
        and browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 200
    ]
    assert decoded, f"no rendered matplotlib PNG among {len(images)} images"

    for button in browser.find_elements(By.XPATH, "//*[contains(@class, 'Toastify')]//button[normalize-space()='No']"):
        button.click()  # JupyterLab's "notified about Jupyter news?" toast, should it show despite fetchNews=false
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", select)
    time.sleep(0.5)
    shot = tmp_path / "03_browser.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("RRTF_BROWSER_SCREENSHOT"):
        Path(os.environ["RRTF_BROWSER_SCREENSHOT"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, os.environ["RRTF_BROWSER_SCREENSHOT"])
