"""The dashboard in a real headless Chromium (Debian's ``chromium`` and its chromedriver,
driven by Selenium; no browser is ever downloaded): for the seeded history the page loads
with no JavaScript at all, each heatmap has one cell per scheduled occurrence in the right
states, the cells are labelled, the page fits a phone's width, and a screenshot is kept.

The screenshot is written under the test's tmp dir (its path printed) and copied to
``tests/artifacts/dashboard.png`` (ignored by git) for a person or CI to look at.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard_site import EXPECTED, Site, site

__all__ = ["site"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MISSING = (
    "Chromium is not installed (apt-get install chromium chromium-driver; scripts/test does "
    "it when apt is available)"
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PHONE = (390, 844)  # CSS pixels of a common phone


@pytest.fixture
def browser() -> Iterator[object]:
    selenium = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = selenium.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="hearth-chromium-")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    # A phone's screen (Chrome's windows are never narrower than 500 pixels).
    metrics = {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 2}
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    # The page must work without JavaScript: the browser runs with it switched off.
    options.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    service = selenium.ChromeService(executable_path=CHROMEDRIVER)
    driver = selenium.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason=MISSING)
def test_the_dashboard_renders_its_heatmaps_in_chromium(
    site: Site, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get(site.url())
    assert browser.title == "Hearth: Alex's rituals with Sam"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Hi Alex"
    for ritual, expected in EXPECTED.items():
        article = browser.find_element(By.CSS_SELECTOR, f'article[data-ritual="{ritual}"]')
        cells = article.find_elements(By.CSS_SELECTOR, "svg.heatmap rect[data-state]")
        assert len(cells) == sum(expected.values()), ritual
        assert Counter(c.get_attribute("data-state") for c in cells) == expected, ritual
        for cell in cells:
            assert cell.size["width"] > 0
            assert cell.size["height"] > 0
        titles = article.find_elements(By.CSS_SELECTOR, "svg.heatmap rect > title")
        assert len(titles) == len(cells)
        first = {"date_night": "Fri 11 Sep 19:30: done", "check_in": "Mon 07 Sep 21:00: missed"}
        assert titles[0].get_attribute("textContent") == first[ritual]
    # One column that fits the phone: nothing wider than the screen scrolls sideways.
    html = browser.find_element(By.TAG_NAME, "html")
    width, scroll_width = html.get_property("clientWidth"), html.get_property("scrollWidth")
    assert isinstance(width, int)
    assert isinstance(scroll_width, int)
    assert width <= PHONE[0], "the phone's width is emulated"
    assert scroll_width <= width
    journal = browser.find_element(By.ID, "journal").text
    assert "<script>alert('x')</script> & a <b>bold</b> night" in journal  # shown, as text
    assert browser.find_element(By.ID, "revealed").is_displayed()
    buttons = browser.find_elements(By.CSS_SELECTOR, "a.button")
    links = {a.text: a.get_attribute("href") for a in buttons}
    assert (links["Subscribe in your calendar app"] or "").startswith("webcal://")
    assert (links["Add to Google Calendar"] or "").startswith("https://calendar.google.com/")

    # The whole page, not only the first screen (DevTools' capture beyond the viewport).
    taken = browser.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    shot = tmp_path / "dashboard.png"
    shot.write_bytes(base64.b64decode(taken["data"]))
    assert shot.read_bytes().startswith(b"\x89PNG")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "dashboard.png")
    print(f"dashboard screenshot: {shot} (copied to {ARTIFACTS / 'dashboard.png'})")
