"""The page in a real browser: `lsbm-sim app SCENARIO` serves every shipped scenario, and Chromium (Debian's
package, driven by Playwright) opens it, steps it, plays it to the end, and sees the counter, the plots and the
post table change. A screenshot of each page is kept in the test's tmp_path.

Each scenario runs at a small size (`--set population.size=...`) so that its page builds in seconds; all the
servers start at once, so that their start-ups overlap."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import CACHE, ROOT

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None and os.environ.get("LSBM_REQUIRE_BROWSER"):  # .ci/run installs Chromium: there, never skip
    raise RuntimeError("LSBM_REQUIRE_BROWSER is set but there is no chromium on PATH")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"),
]

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
START_SECONDS = 180  # a cold start imports torch and loads the sentence encoder, on a shared 2-core machine


def scheduled_steps(value) -> list[int]:
    """Every `step:` the scenario schedules something at (a post, an intervention)."""
    if isinstance(value, dict):
        own = [value["step"]] if isinstance(value.get("step"), int) else []
        return own + [s for v in value.values() for s in scheduled_steps(v)]
    if isinstance(value, list):
        return [s for v in value for s in scheduled_steps(v)]
    return []


def steps(spec: dict) -> int:
    """Few steps, but enough for everything the scenario schedules to happen, and a step after it."""
    return max([4, *(s + 2 for s in scheduled_steps(spec))])


def overrides(path: Path) -> list[str]:
    """A small world of the scenario's own kind; people post more often, so that a few steps make posts."""
    spec = yaml.safe_load(path.read_text())
    sets = ["population.size=300", f"steps={steps(spec)}"]
    if "posting" in spec:
        sets.append("posting.rate=0.05")
    return sets


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One `lsbm-sim app` server per shipped scenario, all started at once; stopped at the end."""
    logs = tmp_path_factory.mktemp("servers")
    env = {**os.environ, "MPLCONFIGDIR": str(CACHE / "matplotlib"), "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"}
    started = {}
    for path in SCENARIOS:
        port = free_port()
        sets = [arg for s in overrides(path) for arg in ("--set", s)]
        log = open(logs / f"{path.stem}.log", "w")
        command = [sys.executable, "-m", "lsbm_sim.cli", "app", path.stem, "--port", str(port), *sets]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        started[path.stem] = (port, process, logs / f"{path.stem}.log")
    yield started
    for _, process, _ in started.values():
        try:
            os.killpg(process.pid, 15)  # the command and the solara server it started
        except ProcessLookupError:  # a server that failed to start has exited already; stop the others all the same
            pass
    for _, process, _ in started.values():
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def chromium():
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def wait_for_server(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no page on port {port} after {START_SECONDS} s:\n{log.read_text()[-3000:]}")


def figures(page) -> list[bytes]:
    """The two plots and the cascade drawing, as the browser shows them (pixels: their blob URLs change on
    every redraw, whether or not the picture does)."""
    for _ in range(20):
        try:
            return [image.screenshot(timeout=5_000) for image in page.locator("img.widget-image").all()]
        except sync_api.Error:  # a redraw replaced an image while it was being captured: capture them again
            time.sleep(0.25)
    pytest.fail("the figures never held still long enough to be captured")


def wait_until_redrawn(page, before: list[bytes], timeout: float = 30) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        after = figures(page)
        if len(after) == len(before) and all(a != b for a, b in zip(after, before)):
            return after
        if time.monotonic() > deadline:
            changed = [a != b for a, b in zip(after, before)]
            pytest.fail(f"the figures did not all change after stepping (changed: {changed})")
        time.sleep(0.5)


def post_table(page) -> str:
    return page.get_by_text("of widest reach").or_(page.get_by_text("no posts yet")).first.inner_text()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_each_shipped_scenario_steps_and_plays_to_the_end_in_a_browser(path, servers, chromium, tmp_path):
    port, process, log = servers[path.stem]
    wait_for_server(port, process, log)
    spec = yaml.safe_load(path.read_text())
    total = steps(spec)
    page = chromium.new_page(viewport={"width": 1400, "height": 1100})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://127.0.0.1:{port}/")
    header = page.locator(".v-alert")  # the run's state, under the scenario's description
    header.filter(has_text=f"Step 0 of {total}:").wait_for(timeout=START_SECONDS * 1000)
    body = page.inner_text("body")
    assert "Traceback" not in body and page.locator(".v-alert.error").count() == 0, body[:2000]
    # The page names the scenario and says what it is about; the selector shows its name, not a file path.
    assert page.get_by_role("heading", name=spec["name"]).is_visible()
    assert " ".join(spec["description"].split())[:60] in " ".join(body.split())
    assert page.locator(".v-select__selection").first.inner_text() == path.stem
    assert "300 people" in body
    page.screenshot(path=tmp_path / f"{path.stem}-start.png", full_page=True)
    table, plots = post_table(page), figures(page)
    assert len(plots) >= 3  # two plots and the cascade drawing
    if not spec.get("content"):  # people post as they go: before the first step there is no post at all
        assert "no posts yet" in table, table

    for step in (1, 2):
        page.get_by_role("button", name="Step", exact=True).click()
        header.filter(has_text=f"Step {step} of {total}:").wait_for(timeout=60_000)
    page.get_by_text("Step: 2", exact=True).wait_for(timeout=10_000)  # Mesa's own step counter agrees
    page.wait_for_function(f"() => !document.body.innerText.includes({table!r})", timeout=30_000)
    stepped_table = post_table(page)
    assert stepped_table != table and "of widest reach" in stepped_table
    wait_until_redrawn(page, plots)  # both plots have new steps, and the cascade drawing its first shares

    page.get_by_role("button", name="▶").click()
    header.filter(has_text=f"Finished after {total} steps").wait_for(timeout=120_000)
    page.get_by_text(f"Step: {total}", exact=True).wait_for(timeout=10_000)
    assert page.get_by_role("button", name="Step", exact=True).is_disabled()  # a finished run goes no further
    page.screenshot(path=tmp_path / f"{path.stem}.png", full_page=True)
    assert not errors, errors
    page.close()
