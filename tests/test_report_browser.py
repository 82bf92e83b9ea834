"""The HTML report in real headless Chromium: loads cleanly, shows its parts, and does not run model output."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_llmswap.report.html import write_html
from synthetic import synthetic_results

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
    results = synthetic_results(600, extra_outputs={("haiku", "case-00003"): HOSTILE})
    return write_html(results, tmp_path_factory.mktemp("browser") / "report.html")


def _save_artifact(driver, path: Path) -> None:
    driver.save_screenshot(str(path))
    if os.environ.get("LLMSWAP_ARTIFACTS"):
        target = Path(os.environ["LLMSWAP_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


@pytest.fixture(scope="module")
def big_report(tmp_path_factory) -> Path:
    return write_html(synthetic_results(10_000), tmp_path_factory.mktemp("browser-big") / "report.html")


def _open(driver, path: Path, width: int = 1400, height: int = 2000) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(width, height)
    driver.get(path.as_uri())
    # On a loaded machine get() can return while a 2 MB page is still parsing: wait until the whole page is in
    # and the script has filled the matrix status line (it runs last).
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "var s = document.getElementById('f-status');"
        "return document.readyState === 'complete' && (!s || s.textContent.length > 0)"))


def _visible_rows(driver) -> list[dict]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#matrix-table tbody tr')).filter(r => !r.hidden)"
        ".map(r => ({p: r.dataset.p, s: r.dataset.s, case: r.cells[1].textContent}))")


def _search(driver, text: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    box = driver.find_element("id", "f-search")
    box.clear()
    box.send_keys(text)
    # The search waits 120 ms after the last key: wait until the status reflects it.
    WebDriverWait(driver, 5).until(lambda d: all(text.lower() in r["s"] for r in _visible_rows(d)))


def test_report_loads_without_errors_or_requests_and_opens_on_the_decision(browser, report):
    from selenium.webdriver.common.by import By

    _open(browser, report)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    sections = [s.get_attribute("id") for s in browser.find_elements(By.CSS_SELECTOR, "main > section")]
    assert sections[:3] == ["attention", "verdicts", "matrix"]
    overall = browser.find_element(By.ID, "overall")
    assert overall.location["y"] < 150 and "haiku can replace gpt-4o" in overall.text
    first = browser.find_elements(By.CSS_SELECTOR, "ol.attention > li")[0].text
    assert first.startswith("local-int8: ") and "regression" in first  # the worst problem first
    cards = browser.find_elements(By.CSS_SELECTOR, "article.verdict-card")
    assert [c.find_element(By.TAG_NAME, "h3").text.split()[0] for c in cards] == ["haiku", "gpt-4o-mini", "local-int8"]
    assert "drop-in" in cards[0].text and "Break-even" in cards[0].text and "checkpoint" in cards[0].text
    plane = browser.find_element(By.CSS_SELECTOR, "#plane svg.plane")
    assert plane.size["width"] > 300 and len(plane.find_elements(By.CSS_SELECTOR, ".point")) == 4
    assert browser.find_elements(By.CSS_SELECTOR, "#drift svg.hist")
    _save_artifact(browser, report.with_name("report-top.png"))


def test_plane_labels_do_not_overlap_in_the_browser(browser, report):
    _open(browser, report)
    boxes = browser.execute_script(
        "return Array.from(document.querySelectorAll('#plane .label, #plane .point')).map(e => {"
        "const b = e.getBBox(); return [e.getAttribute('class'), b.x, b.y, b.x + b.width, b.y + b.height]; })")
    labels = [b[1:] for b in boxes if b[0] == "label"]
    marks = [b[1:] for b in boxes if b[0] != "label"]

    def overlap(a, b):
        return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5

    assert len(labels) == 4
    assert not any(overlap(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])
    assert not any(overlap(a, m) for a in labels for m in marks)


def test_matrix_puts_problems_first_and_filters_and_searches(browser, report):
    from selenium.webdriver.common.by import By

    _open(browser, report)
    rows = _visible_rows(browser)
    assert rows and rows[0]["p"] != "" and len(rows) <= 100
    problem_flags = [r["p"] != "" for r in rows]
    assert problem_flags == sorted(problem_flags, reverse=True)  # every problem row before any clean one
    browser.find_element(By.ID, "f-problems").click()
    assert all(r["p"] != "" for r in _visible_rows(browser))
    _search(browser, "case-00042")
    assert [r["case"] for r in _visible_rows(browser)] in ([], ["case-00042"])
    browser.find_element(By.ID, "f-problems").click()
    assert [r["case"] for r in _visible_rows(browser)] == ["case-00042"]
    assert "1 matching" in browser.find_element(By.ID, "f-status").text
    # A verdict card's link filters the matrix to that candidate's problems.
    link = browser.find_element(By.XPATH, "//a[contains(., 'Cases that need attention on local-int8')]")
    browser.execute_script("arguments[0].scrollIntoView()", link)
    link.click()
    rows = _visible_rows(browser)
    assert rows and all("2" in r["p"].split() for r in rows)
    assert browser.find_element(By.ID, "f-column").get_attribute("value") == "2"


def test_model_output_is_shown_as_text_and_never_runs(browser, report):
    from selenium.webdriver.common.by import By

    _open(browser, report)
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    case = browser.find_element(By.XPATH, "//details[contains(@class,'case')][summary[span[@class='cand'] = 'haiku']"
                                          "[contains(., 'case-00003')]]")
    # Opened through its link in the matrix, as a reviewer would.
    anchor = case.get_attribute("id")
    link = browser.find_element(By.CSS_SELECTOR, f'#matrix-table a[href="#{anchor}"]')
    _search(browser, "case-00003")
    link.click()
    assert case.get_attribute("open") is not None
    candidate_text = case.find_elements(By.CSS_SELECTOR, ".side pre.text")[1].text
    assert '<script>window.__pwned=1</script>' in candidate_text
    assert '<img src=x onerror="window.__pwned=2">' in candidate_text
    assert case.find_elements(By.TAG_NAME, "img") == [] and case.find_elements(By.TAG_NAME, "script") == []
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    _save_artifact(browser, report.with_name("report-hostile-case.png"))


def test_contract_table_sorts_from_the_keyboard(browser, report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, report)
    table = browser.find_element(By.CSS_SELECTOR, "table.contracts")
    column = [b.text for b in table.find_elements(By.CSS_SELECTOR, "th button")].index("regressions")
    regressions = lambda: [float(r.find_elements(By.TAG_NAME, "td")[column].text)  # noqa: E731
                           for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert regressions() == sorted(regressions(), reverse=True)  # server-side default
    button = table.find_elements(By.CSS_SELECTOR, "th button")[column]
    browser.execute_script("arguments[0].scrollIntoView()", button)
    button.send_keys(Keys.ENTER)
    assert regressions() == sorted(regressions())
    assert button.find_element(By.XPATH, "..").get_attribute("aria-sort") == "ascending"
    button.send_keys(Keys.SPACE)
    assert regressions() == sorted(regressions(), reverse=True)


def test_what_the_switch_saves_is_above_the_fold_at_1280_by_720(browser, report):
    """Issue 19: the cost of switching is on the first screen of a laptop, the cheapest drop-in's saving first."""
    _open(browser, report, width=1280, height=720)
    fold = browser.execute_script("return window.innerHeight")
    box = browser.execute_script("var r = document.getElementById('overall').getBoundingClientRect();"
                                 "return [r.top, r.bottom]")
    text = browser.find_element("id", "overall").text
    assert box[1] <= fold, (box, fold)
    assert "a month" in text and "$" in text, text
    _save_artifact(browser, report.with_name("report-1280x720.png"))


def test_narrow_layout_has_no_horizontal_page_scroll(browser, report):
    _open(browser, report, width=400)
    widths = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    _save_artifact(browser, report.with_name("report-400px.png"))


def test_ten_thousand_rows_stay_usable(browser, big_report):
    # How fast is measured in benchmarks/bench_report.py; here: every row is in the page, pages, filter and search work.
    from selenium.webdriver.common.by import By

    _open(browser, big_report)
    total = browser.execute_script("return document.querySelectorAll('#matrix-table tbody tr').length")
    assert total == 3333 and len(_visible_rows(browser)) == 100
    browser.find_element(By.ID, "f-problems").click()
    _search(browser, "test_contract_5")
    rows = _visible_rows(browser)
    assert rows and all(r["p"] and "test_contract_5" in r["s"] for r in rows)
    browser.find_element(By.ID, "f-next").click()
    assert "page 2 of" in browser.find_element(By.ID, "f-status").text or len(rows) < 100
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory) -> Path:
    """A report whose cases carry every metric a run can show (local-model kl and top-1, style, tokens, fields, a
    deepeval score), long unbroken outputs and a fields tolerance on "category" (issue 20.8)."""
    from test_reading_html import category_drift

    results = category_drift()
    for i, case in enumerate(results.cases):
        case.metrics.update({"fields": 0.5, "style": 0.12, "kl": 0.0312, "top1": 0.97, "deepeval:Answer Relevancy": 0.8})
        if i % 9 == 0 and case.output is not None:
            results.cases[i] = replace(case, output=replace(case.output, text="x" * 300 + " " + case.output.text))
    return write_html(results, tmp_path_factory.mktemp("browser-wide") / "report.html")


def test_search_finds_tolerance_lines_and_prompts_in_the_browser(browser, wide_report):
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, wide_report)
    _search(browser, "category")
    rows = _visible_rows(browser)
    assert len(rows) == 7 and "7 matching" in browser.find_element("id", "f-status").text
    _search(browser, "classify the ticket")  # the prompt, which no other text holds
    WebDriverWait(browser, 5).until(lambda d: "40 matching" in d.find_element("id", "f-status").text)


def test_every_part_fits_400_px_with_every_detail_open(browser, wide_report):
    _open(browser, wide_report, width=400)
    browser.execute_script("document.querySelectorAll('details').forEach(d => { d.open = true; });")
    widths = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    # what is wider than the page sits in a box of its own that scrolls (tables, charts), never the page
    wide = browser.execute_script(
        "const w = document.documentElement.clientWidth;"
        "return Array.from(document.querySelectorAll('body *')).filter(e => {"
        "  const r = e.getBoundingClientRect(); if (r.right <= w + 0.5) return false;"
        "  for (let p = e.parentElement; p; p = p.parentElement) {"
        "    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return false; }"
        "  return true; }).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
        ".slice(0, 10)")
    _save_artifact(browser, wide_report.with_name("report-400px-open.png"))
    assert widths[0] <= widths[1] and wide == [], (widths, wide)
