"""The dashboard (GET /) in a real browser: headless Chromium loads the page from a live daemon, the
test types a token into it as a person would, and checks that the rendered charts carry the
sessions' history (points per chart = steps, last values, skipped-step marks, MTAdam's per-layer
term weights, MoMo's τ label), that the page refreshes by itself while a session steps, how it
answers 401/403, and that the token never reaches a URL or the daemon's log.

Run (after `swift build --product optimizerd`):
    python -m pytest integration/dashboard -q

Needs (Debian and PyPI only; nothing is downloaded at run time):
    apt-get install chromium chromium-driver
    pip install selenium ./clients/python
Browser tests skip, naming what is missing, when Chromium, its driver or Selenium is not installed.
The daemon is ``$OPTIMIZERD_BIN``, else ``<repo>/.build/debug/optimizerd``. Set
``DASHBOARD_SCREENSHOT_DIR`` to keep the screenshots the tests take.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

try:  # the Python client: pip install ./clients/python
    from optimizerd.testing import LocalDaemon
except ImportError as error:  # pragma: no cover - depends on the machine
    pytest.skip(
        f"the Python client is not installed (pip install ./clients/python): {error}", allow_module_level=True
    )
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip("selenium is not installed (pip install selenium)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "dashboard-admin-token-4f1c9a7e"
ADAM_STEPS = 12
ADAM_SKIPPED_STEP = 5
MTADAM_STEPS = 7
MOMO_STEPS = 4
MTADAM_SHAPES = {"encoder.weight": (4, 3), "encoder.bias": (3,), "head.weight": (3, 2)}


def daemon_binary() -> Path:
    """The binary under test, or a test failure saying how to get one."""
    env = os.environ.get("OPTIMIZERD_BIN")
    path = Path(env) if env else REPO / ".build" / "debug" / "optimizerd"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"optimizerd binary not found at {path}. Build it with `swift build --product optimizerd` in {REPO}, "
            "or set OPTIMIZERD_BIN to a built binary.",
            pytrace=False,
        )
    return path


def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver from Debian, or a skip naming what is missing."""
    chromium = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver")
    missing = []
    if not chromium:
        missing.append("chromium (apt-get install chromium)")
    if not driver:
        missing.append("chromedriver (apt-get install chromium-driver)")
    if missing:
        pytest.skip("headless browser not installed: " + ", ".join(missing))
    return chromium, driver  # type: ignore[return-value]


@dataclass
class Run:
    """A session the tests chart, with the history the daemon reports for it."""

    session: Any
    name: str
    optimizer: str
    steps: int
    history: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.session.id)

    @property
    def token(self) -> str:
        return str(self.session.token)

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.history["records"])

    def refresh(self) -> Run:
        self.history = self.session.history()
        return self


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def expected_points(records: list[dict[str, Any]], key: str) -> int:
    """Points the dashboard draws for `key`: finite values, and only the loss of a skipped step."""
    return sum(1 for r in records if finite(r.get(key)) and (key == "loss" or not r["skipped"]))


def step_adam(session, rng, steps: int, start: int = 0, skip_at: int | None = None) -> None:
    for step in range(start + 1, start + steps + 1):
        gradient = rng.standard_normal((8, 4)).astype(np.float32)
        if step == skip_at:
            gradient[0, 0] = np.nan  # nonfinite: skip → reported as a skipped step
        session.step(
            {"layer.weight": gradient, "layer.bias": rng.standard_normal(4).astype(np.float32)},
            loss=2.0 / step,
        )


@pytest.fixture(scope="session")
def daemon():
    """A daemon with an admin token, logging every request (to check that no token is logged)."""
    with LocalDaemon(daemon_binary(), admin_token=ADMIN_TOKEN, args=["--log-level", "debug"]) as running:
        yield running


@pytest.fixture(scope="session")
def runs(daemon) -> dict[str, Run]:
    """An Adam session (one skipped step), an MTAdam session (two terms, three layers) and a MoMo one."""
    rng = np.random.default_rng(7)
    client = daemon.client()

    adam = client.create_session("adam", lr=0.01, nonfinite="skip", name="adam-run")
    adam.upload_parameters(
        {
            "layer.weight": rng.standard_normal((8, 4)).astype(np.float32),
            "layer.bias": np.zeros(4, np.float32),
        }
    )
    step_adam(adam, rng, ADAM_STEPS, skip_at=ADAM_SKIPPED_STEP)

    mtadam = client.create_session("mtadam", lr=0.01, terms=2, name="mtadam-run")
    mtadam.upload_parameters({n: rng.standard_normal(s).astype(np.float32) for n, s in MTADAM_SHAPES.items()})
    for step in range(1, MTADAM_STEPS + 1):
        terms = [
            {n: (rng.standard_normal(s) * scale).astype(np.float32) for n, s in MTADAM_SHAPES.items()}
            for scale in (1.0, 30.0)
        ]
        mtadam.step(terms, loss=[1.0 / step, 3.0 / step])

    momo = client.create_session("momo", lr=1.0, name="momo-run")
    momo.upload_parameters({"w": rng.standard_normal(6).astype(np.float32)})
    for step in range(1, MOMO_STEPS + 1):
        momo.step({"w": rng.standard_normal(6).astype(np.float32)}, loss=1.5 / step)

    return {
        "adam": Run(adam, "adam-run", "adam", ADAM_STEPS).refresh(),
        "mtadam": Run(mtadam, "mtadam-run", "mtadam", MTADAM_STEPS).refresh(),
        "momo": Run(momo, "momo-run", "momo", MOMO_STEPS).refresh(),
    }


@pytest.fixture
def browser():
    """A fresh headless Chromium (new profile: empty sessionStorage) at a laptop's window size."""
    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """Where screenshots go: $DASHBOARD_SCREENSHOT_DIR (to look at them), else the test's temp dir."""
    chosen = os.environ.get("DASHBOARD_SCREENSHOT_DIR")
    directory = Path(chosen) if chosen else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# MARK: helpers

WAIT = 20  # seconds; polls are every 2 s


def login(driver, url: str, token: str, session_id: str = "") -> None:
    """Opens the page and types the token (and session id) into its form, as a person would."""
    driver.get(url + "/")
    wait(driver, lambda d: d.find_element(By.ID, "login").is_displayed(), "the login form")
    if not driver.find_element(By.ID, "token").is_displayed():
        driver.find_element(By.ID, "change-token").click()
    driver.find_element(By.ID, "token").send_keys(token)
    field = driver.find_element(By.ID, "session-id")
    field.clear()
    if session_id:
        field.send_keys(session_id)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


def wait(driver, condition, what: str, timeout: float = WAIT):
    def safe(d):
        try:
            return condition(d)
        except Exception:  # element not there yet, stale after a re-render
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(safe)
    except Exception:
        status = driver.find_element(By.ID, "status").text
        message = driver.find_element(By.ID, "message").text
        raise AssertionError(
            f"timed out waiting for {what}; status: {status!r}, message: {message!r}"
        ) from None


def charts_of(driver, session_id: str, steps: int) -> None:
    """Waits until the page shows `session_id` with `steps` loss points."""
    wait(
        driver,
        lambda d: (
            d.find_element(By.ID, "detail").get_attribute("data-session-id") == session_id
            and d.find_element(By.CSS_SELECTOR, "figure[data-chart=loss]").get_attribute("data-points")
            == str(steps)
        ),
        f"the charts of {session_id} with {steps} steps",
    )


def select(driver, session_id: str) -> None:
    def click(d) -> bool:  # find and click in one go: the list re-renders on every poll
        d.find_element(By.CSS_SELECTOR, f'tr[data-session-id="{session_id}"] button').click()
        return True

    wait(driver, click, "the row")


def figure(driver, key: str):
    return driver.find_element(By.CSS_SELECTOR, f'figure[data-chart="{key}"]')


def fact(driver, key: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'#detail-facts [data-fact="{key}"] dd').text


def severe_console_messages(driver) -> list[str]:
    """Script errors and policy violations. Failed requests are left out: before a token is typed
    the page's first GET /v1/sessions is answered 401 on purpose, and Chromium logs that."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]


# MARK: the page itself


def test_serves_the_page_and_its_files_with_a_strict_policy(daemon):
    page = requests.get(daemon.url + "/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy and "http" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-cache"
    assert "<script>" not in page.text
    # Classic scripts that run in document order: each one uses the namespaces of those before it.
    scripts = ["/dashboard/charts.js", "/dashboard/chart-specs.js", "/dashboard/dashboard.js"]
    tags = [page.text.find(f'<script src="{path}" defer></script>') for path in scripts]
    assert -1 not in tags and tags == sorted(tags), tags
    for path, content_type in [
        ("/dashboard/charts.js", "text/javascript"),
        ("/dashboard/chart-specs.js", "text/javascript"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ]:
        response = requests.get(daemon.url + path, timeout=5)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(content_type)
        again = requests.get(
            daemon.url + path, headers={"If-None-Match": response.headers["ETag"]}, timeout=5
        )
        assert again.status_code == 304 and again.content == b""
    # Nothing from elsewhere: every src/href of the page is on this origin.
    for marker in ("http://", "https://", "//cdn"):
        assert marker not in page.text


def test_first_visit_asks_for_a_token(daemon, browser):
    browser.get(daemon.url + "/")
    wait(
        browser,
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "idle",
        "the first answer",
    )
    assert browser.find_element(By.ID, "login").is_displayed()
    assert "admin token" in browser.find_element(By.ID, "login-hint").text
    assert not browser.find_element(By.ID, "message").is_displayed(), "no error before a token was typed"
    assert not browser.find_element(By.ID, "sessions").is_displayed()
    # The form cannot send the token anywhere by itself: its inputs have no name.
    assert browser.find_element(By.ID, "token").get_attribute("name") in (None, "")
    assert browser.find_element(By.ID, "token").get_attribute("type") == "password"


# MARK: admin token


def test_admin_token_lists_every_session_and_charts_the_history(daemon, runs, browser, screenshot_dir):
    adam = runs["adam"]
    login(browser, daemon.url, ADMIN_TOKEN)
    wait(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#session-list tbody tr")) >= 3,
        "the session list",
    )
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-mode") == "list"
    select(browser, adam.id)
    charts_of(browser, adam.id, ADAM_STEPS)
    records = adam.records

    # The loss chart: one point per step, its last value the history's.
    loss = figure(browser, "loss")
    assert int(loss.get_attribute("data-points")) == ADAM_STEPS == len(records)
    assert float(loss.get_attribute("data-last")) == pytest.approx(records[-1]["loss"], rel=1e-12)
    assert loss.find_element(By.CSS_SELECTOR, "path.series").get_attribute("data-points") == str(ADAM_STEPS)
    assert loss.get_attribute("data-last-step") == str(ADAM_STEPS)
    assert len(loss.find_elements(By.CSS_SELECTOR, "g.dots circle")) == ADAM_STEPS
    assert loss.find_elements(By.CSS_SELECTOR, "text.tick.y"), "the y axis has labels"

    # Learning rate, gradient and update norms: the skipped step is a gap, not a zero.
    assert figure(browser, "lr").find_element(By.CSS_SELECTOR, ".title").text == "Learning rate"
    for key in ("lr", "grad_norm", "update_norm"):
        chart = figure(browser, key)
        assert int(chart.get_attribute("data-points")) == expected_points(records, key) == ADAM_STEPS - 1, key
        last = next(r[key] for r in reversed(records) if not r["skipped"])
        assert float(chart.get_attribute("data-last")) == pytest.approx(last, rel=1e-12), key

    # The skipped step is marked on every chart.
    assert [r["step"] for r in records if r["skipped"]] == [ADAM_SKIPPED_STEP]
    for chart in browser.find_elements(By.CSS_SELECTOR, "figure.chart"):
        marks = chart.find_elements(By.CSS_SELECTOR, "line.skip")
        assert [m.get_attribute("data-step") for m in marks] == [str(ADAM_SKIPPED_STEP)]

    # The facts and the list row agree with the daemon.
    summary = adam.session.summary()
    assert fact(browser, "step") == str(ADAM_STEPS)
    assert fact(browser, "skipped") == "1"
    assert fact(browser, "durable_step") == f"{summary['durable_step']:,}"
    # The newest snapshot's step (no snapshot failed here; one may complete between reads).
    assert re.fullmatch(r"step [0-9,]+", fact(browser, "snapshot")), fact(browser, "snapshot")
    assert fact(browser, "parameters").startswith(f"{summary['parameter_count']:,} in 2 tensors")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-session-id="{adam.id}"]')
    assert row.find_element(By.CSS_SELECTOR, '[data-field="step"]').text == str(ADAM_STEPS)
    assert row.find_element(By.CSS_SELECTOR, '[data-field="optimizer"]').text == "adam"
    assert float(row.find_element(By.CSS_SELECTOR, '[data-field="last_loss"]').text) == pytest.approx(
        records[-1]["loss"], rel=1e-5
    )
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-group=term-weights]")

    path = screenshot_dir / "dashboard-adam.png"
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    assert severe_console_messages(browser) == []


def test_mtadam_gets_one_term_weight_chart_per_layer(daemon, runs, browser, screenshot_dir):
    mtadam = runs["mtadam"]
    login(browser, daemon.url, ADMIN_TOKEN)
    select(browser, mtadam.id)
    charts_of(browser, mtadam.id, MTADAM_STEPS)
    last = mtadam.records[-1]
    layers = browser.find_elements(By.CSS_SELECTOR, "[data-group=term-weights] figure.chart")
    assert sorted(f.get_attribute("data-layer") for f in layers) == sorted(MTADAM_SHAPES)
    for chart in layers:
        layer = chart.get_attribute("data-layer")
        assert chart.get_attribute("data-series") == "2"
        assert chart.get_attribute("data-points") == str(MTADAM_STEPS)
        assert float(chart.get_attribute("data-last")) == pytest.approx(
            last["term_weights"][layer][0], rel=1e-12
        )
        assert len(chart.find_elements(By.CSS_SELECTOR, "path.series")) == 2
        assert [k.text for k in chart.find_elements(By.CSS_SELECTOR, ".legend .key")] == ["term 0", "term 1"]
    norms = figure(browser, "term_grad_norms")
    assert norms.get_attribute("data-series") == "2"
    assert float(norms.get_attribute("data-last")) == pytest.approx(last["term_grad_norms"][0], rel=1e-12)
    assert float(figure(browser, "loss").get_attribute("data-last")) == pytest.approx(last["loss"], rel=1e-12)
    browser.set_window_size(1440, 1700)  # the whole page, for a person to look at
    browser.save_screenshot(str(screenshot_dir / "dashboard-mtadam.png"))
    assert severe_console_messages(browser) == []


def test_momo_charts_its_adaptive_step_size(daemon, runs, browser):
    momo = runs["momo"]
    login(browser, daemon.url, ADMIN_TOKEN)
    select(browser, momo.id)
    charts_of(browser, momo.id, momo.steps)
    chart = figure(browser, "lr")
    assert "τ" in chart.find_element(By.CSS_SELECTOR, ".title").text
    assert float(chart.get_attribute("data-last")) == pytest.approx(momo.records[-1]["lr"], rel=1e-12)


def test_hover_reads_out_the_step_under_the_pointer_and_the_log_axis_is_kept(daemon, runs, browser):
    adam = runs["adam"]
    login(browser, daemon.url, ADMIN_TOKEN)
    select(browser, adam.id)
    charts_of(browser, adam.id, ADAM_STEPS)
    losses = {r["step"]: r["loss"] for r in adam.records}
    loss = figure(browser, "loss")
    readout = loss.find_element(By.CSS_SELECTOR, ".readout")

    def read() -> tuple[int, float]:
        step, value = readout.text.removeprefix("step ").split(": ")
        return int(step), float(value)

    # At rest the readout is the last step; the pointer at the plot's left or right edge reads the
    # first or the last step, with the cursor line shown, and leaving the plot restores the default.
    assert read() == (ADAM_STEPS, pytest.approx(losses[ADAM_STEPS], rel=1e-5))
    hover = loss.find_element(By.CSS_SELECTOR, "rect.hover")
    edge = hover.size["width"] // 2 - 2
    ActionChains(browser).move_to_element_with_offset(hover, -edge, 0).perform()
    assert read() == (1, pytest.approx(losses[1], rel=1e-5))
    assert loss.find_element(By.CSS_SELECTOR, "line.cursor").get_attribute("visibility") == "visible"
    ActionChains(browser).move_to_element_with_offset(hover, edge, 0).perform()
    assert read()[0] == ADAM_STEPS
    ActionChains(browser).move_to_element(loss.find_element(By.CSS_SELECTOR, ".title")).perform()
    assert read() == (ADAM_STEPS, pytest.approx(losses[ADAM_STEPS], rel=1e-5))
    assert loss.find_element(By.CSS_SELECTOR, "line.cursor").get_attribute("visibility") == "hidden"

    def y_ticks(chart) -> list[float]:
        return [float(t.text) for t in chart.find_elements(By.CSS_SELECTOR, "text.tick.y")]

    linear_path = loss.find_element(By.CSS_SELECTOR, "path.series").get_attribute("d")
    toggle = loss.find_element(By.CSS_SELECTOR, "button.toggle")
    assert toggle.text == "log"
    toggle.click()
    # Losses 2/step for steps 1-12 lie between 0.1 and 10: a log axis ticks each power of ten.
    assert toggle.text == "linear"
    assert y_ticks(loss) == [0.1, 1.0, 10.0]
    assert loss.find_element(By.CSS_SELECTOR, "path.series").get_attribute("d") != linear_path
    # Another session and back: the charts are built anew and the loss chart keeps its log axis.
    select(browser, runs["momo"].id)
    charts_of(browser, runs["momo"].id, runs["momo"].steps)
    select(browser, adam.id)
    charts_of(browser, adam.id, ADAM_STEPS)
    loss = figure(browser, "loss")
    assert loss.find_element(By.CSS_SELECTOR, "button.toggle").text == "linear"
    assert y_ticks(loss) == [0.1, 1.0, 10.0]
    loss.find_element(By.CSS_SELECTOR, "button.toggle").click()
    assert loss.find_element(By.CSS_SELECTOR, "path.series").get_attribute("d") == linear_path
    assert severe_console_messages(browser) == []


def test_facts_show_the_state_dtype_and_its_bytes(daemon, runs, browser):
    """Issue 15: the page says how a session stores its optimizer state, and how many bytes."""
    rng = np.random.default_rng(11)
    compact = daemon.client().create_session("adamw", lr=1e-3, state_dtype="int8", name="int8-run")
    compact.upload_parameters({"w": rng.standard_normal(8192).astype(np.float32)})
    compact.step({"w": rng.standard_normal(8192).astype(np.float32)}, loss=1.0)
    login(browser, daemon.url, ADMIN_TOKEN)
    for session, dtype in ((compact, "int8"), (runs["adam"].session, "f32")):
        summary = session.summary()
        assert summary["state_dtype"] == dtype
        select(browser, str(session.id))
        wait(
            browser,
            lambda d, wanted=str(session.id), dtype=dtype: (
                d.find_element(By.ID, "detail").get_attribute("data-session-id") == wanted
                and fact(d, "state").startswith(dtype)
            ),
            f"the facts of the {dtype} session",
        )
        assert fact(browser, "state") == f"{dtype} · {summary['state_bytes']:,} bytes"
    # Two moments of 8192 one-byte codes, each with a float32 absmax per block of 256 (32 blocks).
    assert compact.summary()["state_bytes"] == 2 * 8192 + 8 * 32
    assert severe_console_messages(browser) == []


def test_refreshes_by_itself_while_the_session_steps(daemon, browser):
    rng = np.random.default_rng(3)
    session = daemon.client().create_session("adam", lr=0.01, name="live-run")
    session.upload_parameters(
        {"layer.weight": np.ones((8, 4), np.float32), "layer.bias": np.zeros(4, np.float32)}
    )
    step_adam(session, rng, 3)
    login(browser, daemon.url, ADMIN_TOKEN)
    select(browser, session.id)
    charts_of(browser, session.id, 3)
    step_adam(session, rng, 4, start=3)
    charts_of(browser, session.id, 7)  # no reload, no click: the page polled
    last = session.history()["records"][-1]
    # Read through wait(): the page re-renders on every poll, so an element found a moment ago may be stale.
    wait(
        browser,
        lambda d: (
            float(figure(d, "loss").get_attribute("data-last")) == pytest.approx(last["loss"], rel=1e-12)
        ),
        "the last loss value",
    )
    wait(
        browser,
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "live",
        "the live state",
    )
    session.delete()


# MARK: session token, errors, where the token goes


def test_session_token_shows_only_its_session(daemon, runs, browser):
    mtadam = runs["mtadam"]
    login(browser, daemon.url, mtadam.token, mtadam.id)
    charts_of(browser, mtadam.id, MTADAM_STEPS)
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-mode") == "single"
    rows = browser.find_elements(By.CSS_SELECTOR, "#session-list tbody tr")
    assert [r.get_attribute("data-session-id") for r in rows] == [mtadam.id]
    assert fact(browser, "step") == str(MTADAM_STEPS)


def test_session_token_without_an_id_is_told_it_cannot_list(daemon, runs, browser):
    login(browser, daemon.url, runs["adam"].token)
    wait(
        browser, lambda d: "cannot list sessions" in d.find_element(By.ID, "message").text, "the 403 message"
    )
    assert browser.find_element(By.ID, "status").get_attribute("data-state") == "error"
    assert browser.find_element(By.ID, "login").is_displayed()
    assert not browser.find_element(By.ID, "detail").is_displayed()


def test_another_sessions_token_is_refused_clearly(daemon, runs, browser):
    login(browser, daemon.url, runs["adam"].token, runs["mtadam"].id)
    wait(
        browser, lambda d: "not valid for session" in d.find_element(By.ID, "message").text, "the 403 message"
    )
    assert "403" in browser.find_element(By.ID, "status").text
    assert not browser.find_elements(By.CSS_SELECTOR, "figure.chart")


def test_token_stays_in_session_storage_never_in_a_url_or_the_log(daemon, runs, browser):
    adam = runs["adam"]
    login(browser, daemon.url, adam.token, adam.id)
    charts_of(browser, adam.id, ADAM_STEPS)
    assert browser.execute_script("return sessionStorage.getItem('optimizerd.token')") == adam.token
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.find_element(By.ID, "token").get_attribute("value") == ""
    assert adam.token not in browser.current_url
    browser.refresh()  # kept for the tab: no need to type it again
    charts_of(browser, adam.id, ADAM_STEPS)
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and not [u for u in urls if adam.token in u or ADMIN_TOKEN in u]
    log = daemon.log()
    assert "/history" in log, "the daemon logged the page's requests (debug level)"
    assert adam.token not in log and ADMIN_TOKEN not in log
    browser.find_element(By.ID, "forget").click()
    assert browser.execute_script("return sessionStorage.getItem('optimizerd.token')") is None


def test_without_an_admin_token_the_list_is_open_and_charts_need_the_sessions_token(browser):
    with LocalDaemon(daemon_binary(), args=["--log-level", "warning"]) as open_daemon:
        session = open_daemon.client().create_session("sgd", lr=0.1, name="open-run")
        session.upload_parameters({"w": np.ones(3, np.float32)})
        for step in range(1, 4):
            session.step({"w": np.full(3, 0.5, np.float32)}, loss=1.0 / step)
        browser.get(open_daemon.url + "/")
        wait(
            browser,
            lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-session-id="{session.id}"]'),
            "the list",
        )
        wait(browser, lambda d: "need its token" in d.find_element(By.ID, "login-hint").text, "the 401 hint")
        login(browser, open_daemon.url, session.token, session.id)
        charts_of(browser, session.id, 3)
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-mode") == "list"
