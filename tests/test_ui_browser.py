"""``sftlab ui`` in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) via Selenium.

A real ``sftlab ui`` process serves a tiny run made here: the runs list shows
it, the keyboard review drops one record and edits another, the review file
holds both, a re-run of curation with the ``review`` step counts them, and the
loss curve grows while a short training runs — without reloading the page.
Nothing is downloaded: without the browser or its driver these tests skip and say why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from sftlab.cli.main import main
from ui_helpers import write_recipe

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
)
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver): "
        f"chromium {'found' if CHROMIUM else 'missing'}, chromedriver {'found' if DRIVER else 'missing'}",
        allow_module_level=True,
    )

WAIT = 120  # seconds a page may take to reach the state a test waits for (shared, slow CI machines)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def sftlab_ui(runs_dir):
    """A real ``sftlab ui`` process on a free loopback port; yields its URL."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "sftlab.cli.main",
        "ui",
        str(runs_dir),
        "--port",
        str(port),
        "--who",
        "browser",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert proc.poll() is None, f"sftlab ui exited: {proc.stdout.read()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "sftlab ui did not answer /health"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("ui-browser")
    assert main(["run", str(write_recipe(folder, str(tiny_model_dir))), "--until", "curate"]) == 0
    with sftlab_ui(folder / "runs") as url:
        yield folder, url


def _wait(browser, condition, message):
    """Wait for ``condition``; an element of the page being replaced is simply looked up again."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(browser, WAIT, ignored_exceptions=ignored).until(lambda d: condition(d), message)


def test_the_runs_list_shows_the_run_with_its_headline_and_status(browser, workspace):
    _, url = workspace
    browser.get(url + "/")
    row = browser.find_element(By.CSS_SELECTOR, 'tr.run[data-run="tiny"]')
    assert "12 → 10" in row.text and "curate done" in row.text
    row.find_element(By.LINK_TEXT, "tiny").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "review-link"), "the run page did not open")


def test_the_record_page_marks_the_trained_tokens_with_the_runs_tokenizer(browser, workspace):
    _, url = workspace
    browser.get(url + "/record?r=tiny&id=fruit-5")  # "Is a lemon yellow?" → "yes"
    box = browser.find_element(By.ID, "mask")
    _wait(
        browser,
        lambda d: box.get_attribute("data-state") in ("done", "error"),
        "the mask preview did not load",
    )
    assert box.get_attribute("data-state") == "done", box.text
    trained = "".join(m.text for m in box.find_elements(By.CSS_SELECTOR, "mark.t"))
    assert trained.startswith("yes") and "lemon" not in trained and "lemon" in box.text


def test_keyboard_review_drops_and_edits_and_a_rerun_of_curation_applies_both(browser, workspace):
    folder, url = workspace
    run = folder / "runs" / "tiny"
    browser.get(url + "/data?r=tiny&task=colour")
    browser.find_element(By.LINK_TEXT, "fruit-1").click()  # apple
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "review").get_attribute("data-id") == "fruit-1",
        "no record page",
    )
    browser.find_element(By.ID, "why").send_keys("apples can be yellow")
    browser.execute_script("document.activeElement.blur()")  # keys now go to the page, not the field
    browser.find_element(By.TAG_NAME, "body").send_keys("d")
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "review").get_attribute("data-id") == "fruit-2",
        "d did not go on",
    )
    browser.find_element(By.TAG_NAME, "body").send_keys("e")
    answer = browser.find_element(By.ID, "answer")
    _wait(browser, lambda d: answer.is_displayed(), "e did not open the editor")
    answer.clear()
    answer.send_keys("Yes: a ripe banana is yellow.")
    answer.send_keys(Keys.CONTROL, Keys.ENTER)
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "review").get_attribute("data-id") == "fruit-3",
        "edit did not go on",
    )

    lines = [json.loads(x) for x in (run / "review.jsonl").read_text().splitlines()]
    assert [(x["id"], x["decision"], x["who"]) for x in lines] == [
        ("fruit-1", "drop", "browser"),
        ("fruit-2", "edit", "browser"),
    ]
    assert lines[0]["why"] == "apples can be yellow" and lines[1]["answer"] == "Yes: a ripe banana is yellow."

    steps = f"[{{type: review, path: {run / 'review.jsonl'}}}, {{type: exact_dedup}}]"
    assert main(["run", str(write_recipe(folder, "unused", steps=steps)), "--until", "curate"]) == 0
    report = json.loads((run / "curation" / "report.json").read_text())
    # apple dropped by review, so its duplicate is kept; the edited banana no longer duplicates its copy
    assert report["rejected_by_reason"] == {"review": 1} and report["kept"] == 11 and report["accounting_ok"]
    browser.get(url + "/data?r=tiny")
    assert "review: review 1" in browser.find_element(By.ID, "reasons").text
    browser.get(url + "/record?r=tiny&id=fruit-2")
    assert "Yes: a ripe banana is yellow." in browser.find_element(By.CSS_SELECTOR, ".turn.assistant").text


@pytest.mark.slow  # a real training or two model servers
def test_the_loss_curve_grows_while_a_short_training_runs(browser, workspace, tiny_model_dir):
    folder, url = workspace
    recipe = write_recipe(folder, str(tiny_model_dir), max_steps=12)
    browser.get(url + "/run?r=tiny")
    assert "No training metrics yet" in browser.find_element(By.ID, "curve").text
    browser.execute_script("window.sameDocument = true")  # gone if the page reloads
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    training = subprocess.Popen(
        [sys.executable, "-m", "sftlab.cli.main", "run", str(recipe), "--until", "train"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        points = lambda d: int(d.find_element(By.ID, "curve").get_attribute("data-points") or 0)  # noqa: E731
        _wait(browser, lambda d: points(d) >= 1, "no point of the curve appeared")
        out, _ = training.communicate(timeout=600)
    finally:
        if training.poll() is None:
            training.kill()
    assert training.returncode == 0, out
    logged = [
        json.loads(x) for x in (folder / "runs" / "tiny" / "train" / "metrics.jsonl").read_text().splitlines()
    ]
    steps = [r["step"] for r in logged if "loss" in r]
    assert len(steps) == 12
    _wait(browser, lambda d: points(d) == len(steps), "the curve did not reach every logged step")
    path = browser.find_element(By.CSS_SELECTOR, "#curve svg path.series.train")
    assert path.get_attribute("data-points") == "12" and path.get_attribute("d").count("L") == 11
    assert browser.execute_script("return window.sameDocument") is True
    assert "step 12 of 12 (100%): loss" in browser.find_element(By.ID, "curve-status").text


@pytest.mark.slow  # a real training or two model servers
def test_the_chat_page_streams_answers_from_the_run_and_its_base(browser, workspace, tiny_model_dir):
    folder, url = workspace
    if not (folder / "runs" / "tiny" / "final").is_dir():  # run alone: train first
        recipe = write_recipe(folder, str(tiny_model_dir), max_steps=2)
        assert main(["run", str(recipe), "--until", "train"]) == 0
    browser.get(url + "/chat?r=tiny")
    columns = browser.find_elements(By.CSS_SELECTOR, ".chat-column")
    assert [c.get_attribute("data-model") for c in columns] == ["run", "base"]
    browser.find_element(By.ID, "max-tokens").clear()
    browser.find_element(By.ID, "max-tokens").send_keys("6")
    browser.find_element(By.ID, "prompt").send_keys("Is a lemon yellow?", Keys.ENTER)
    answers = ".chat-column .turn.assistant"
    _wait(
        browser,
        lambda d: (
            [a.get_attribute("data-state") for a in d.find_elements(By.CSS_SELECTOR, answers)] == ["done"] * 2
        ),
        "the two answers did not finish",
    )
    for answer in browser.find_elements(By.CSS_SELECTOR, answers):
        # the random tiny model says something, read from the server-sent events as they arrived
        assert answer.find_element(By.TAG_NAME, "pre").text and int(answer.get_attribute("data-chunks")) >= 1
