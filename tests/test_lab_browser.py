"""The Lab as a student meets it: JupyterLab started on 127.0.0.1, notebook 01 opened in Debian's headless Chromium
through ChromeDriver, every cell run from the Run menu, and what the page shows checked: every code cell ran,
tables and figures rendered, no cell in error. ``make test`` installs chromium and chromium-driver where they are
missing (Debian); without them the test fails under CI and is skipped elsewhere, saying why.

Every process is started here and stopped by its PID: the Jupyter server, ChromeDriver and its browser."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import nbformat
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.test_nbval import NOTEBOOKS, notebook_copy

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
RUN_SECONDS = 600  # notebook 01 runs in about a minute on two cores; a slow day and a shared machine take longer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 serving a folder that holds notebook 01 (its out_dir in the folder too); the URL of
    the notebook, with the server's token."""
    copy = notebook_copy(NOTEBOOKS / "01_memory_pathway.ipynb", tmp_path)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:  # the committed outputs nbval checks must not count as what this run showed
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, copy)
    token, port = secrets.token_hex(16), _free_port()
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # every cell in the page, not only those scrolled into view
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "runtime").glob("jpserver-*.json")):
            assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "JupyterLab did not start in 120 s"
            time.sleep(0.5)
        info = json.loads(next((tmp_path / "runtime").glob("jpserver-*.json")).read_text())
        assert info["port"] == port and info["pid"] == server.pid
        yield f"http://127.0.0.1:{port}/lab/tree/01_memory_pathway.ipynb?token={token}"
    finally:
        _stop(server)


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("no chromium or chromedriver: `make test` installs Debian's chromium and chromium-driver")
        pytest.skip("no chromium or chromedriver (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if service.process and service.process.poll() is None:
            service.process.kill()


def _prompts(driver) -> list[str]:
    return [p.text.strip() for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]


def _errors(driver) -> list[str]:
    """The texts of the error outputs on the page (the Lab renders a cell's exception as stderr, with its traceback)."""
    stderr = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    shown = driver.find_elements(By.CSS_SELECTOR, stderr)
    return [e.text for e in shown if "Traceback (most recent call last)" in e.text]


def test_notebook_01_runs_from_the_lab_in_a_real_browser(browser, lab):
    browser.get(lab)
    wait = WebDriverWait(browser, 120)
    cells = sum(c.cell_type == "code" for c in nbformat.read(NOTEBOOKS / "01_memory_pathway.ipynb", as_version=4).cells)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")) == cells,
               message="the notebook's cells did not all appear")
    wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")), message="no idle kernel")
    browser.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
    wait.until(expected_conditions.element_to_be_clickable(
        (By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all']"))).click()
    WebDriverWait(browser, RUN_SECONDS, poll_frequency=2).until(
        lambda d: _errors(d) or (len(p := _prompts(d)) == cells and all(x[1:-2].isdigit() for x in p)),
        message="not every cell ran")  # Run All stops at a cell in error: then the error is reported at once
    errors = _errors(browser)
    assert not errors, errors[0][:3000]
    tables = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output table")
    figures = [img for img in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
               if browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)]
    assert len(tables) >= 8, f"{len(tables)} tables rendered"
    assert len(figures) >= 3, f"{len(figures)} figures rendered"
    counts = sorted(int(p[1:-2]) for p in _prompts(browser))
    assert counts == list(range(1, cells + 1)), "each cell ran once, top to bottom"
