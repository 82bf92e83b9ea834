"""The HTML report in real headless Chromium: loads cleanly, shows its parts, and does not run model output."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_llmswap.report.html import write_html
from pytest_llmswap.synthetic import synthetic_results

pytestmark = pytest.mark.slow

HOSTILE = '<script>window.__pwned=1</script> then <img src=x onerror="window.__pwned=2"> end'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,2000"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium-manager must not try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    results = synthetic_results(300, extra_outputs={("haiku", "case-00003"): HOSTILE})
    return write_html(results, tmp_path_factory.mktemp("browser") / "report.html")


def _save_artifact(driver, path: Path) -> None:
    driver.save_screenshot(str(path))
    if os.environ.get("LLMSWAP_ARTIFACTS"):
        target = Path(os.environ["LLMSWAP_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def test_report_loads_without_errors_and_shows_cards_and_plane(browser, report):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    cards = browser.find_elements(By.CSS_SELECTOR, "article.verdict-card")
    assert [c.find_element(By.TAG_NAME, "h3").text.split()[0] for c in cards] == ["haiku", "gpt-4o-mini", "local-int8"]
    assert "drop-in" in cards[0].text and "Break-even" in cards[0].text
    plane = browser.find_element(By.CSS_SELECTOR, "#plane svg.plane")
    assert plane.size["width"] > 300 and len(plane.find_elements(By.CSS_SELECTOR, ".point")) == 4
    assert browser.find_elements(By.CSS_SELECTOR, "#drift svg.hist")
    _save_artifact(browser, report.with_name("report-top.png"))


def test_model_output_is_shown_as_text_and_never_runs(browser, report):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    case = browser.find_element(By.XPATH, "//details[contains(@class,'case')][.//summary[contains(., 'case-00003')]]")
    browser.execute_script("arguments[0].scrollIntoView()", case)
    candidate_text = case.find_elements(By.CSS_SELECTOR, ".side pre.text")[1].text
    assert '<script>window.__pwned=1</script>' in candidate_text
    assert '<img src=x onerror="window.__pwned=2">' in candidate_text
    assert case.find_elements(By.TAG_NAME, "img") == [] and case.find_elements(By.TAG_NAME, "script") == []
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    _save_artifact(browser, report.with_name("report-hostile-case.png"))


def test_contract_table_sorts_on_click(browser, report):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    table = browser.find_element(By.CSS_SELECTOR, "table.contracts")
    regressions = lambda: [int(r.find_elements(By.TAG_NAME, "td")[4].text)  # noqa: E731
                           for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert regressions() == sorted(regressions(), reverse=True)  # server-side default
    header = table.find_elements(By.TAG_NAME, "th")[4]
    browser.execute_script("arguments[0].scrollIntoView()", header)
    header.click()
    assert regressions() == sorted(regressions())
