"""Render the HTML and Markdown reports for 10,000 synthetic case rows: time (median of 3) and size; then, where
chromium, chromedriver and selenium are installed, open the HTML in headless Chromium and time the load and a
"problems only" filter plus search (median of 3).

Run: ``python benchmarks/bench_report.py [N_CASES]`` (unset PYTHONDONTWRITEBYTECODE, as users keep .pyc files).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_llmswap.report.html import render_html
from pytest_llmswap.report.markdown import render_markdown

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from synthetic import synthetic_results  # noqa: E402  (test data: tests/synthetic.py)


def median_seconds(fn: Callable[[], str], repeats: int = 3) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def browser_seconds(html: str) -> tuple[float, float] | None:
    """Median seconds to load the page until its script has run, and to filter to problems and search."""
    chromium, driver_path = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return None
    if not chromium or not driver_path:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--window-size=1400,2000"):
        options.add_argument(flag)
    loads, filters = [], []
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        page.write_text(html, encoding="utf-8")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            for _ in range(3):
                start = time.perf_counter()
                driver.get(page.as_uri())
                WebDriverWait(driver, 60).until(
                    lambda d: d.execute_script("return document.getElementById('f-status').textContent.length > 0"))
                loads.append(time.perf_counter() - start)
                start = time.perf_counter()
                driver.find_element("id", "f-problems").click()
                problems_only = driver.find_element("id", "f-status").text
                driver.find_element("id", "f-search").send_keys("test_contract_5")
                WebDriverWait(driver, 60).until(
                    lambda d: d.find_element("id", "f-status").text != problems_only)  # noqa: B023
                filters.append(time.perf_counter() - start - 0.12)  # less the search's deliberate 120 ms debounce
        finally:
            driver.quit()
    return statistics.median(loads), statistics.median(filters)


def main(n_cases: int = 10_000) -> None:
    results = synthetic_results(n_cases)
    rows = [("HTML", *median_seconds(lambda: render_html(results))),
            ("Markdown", *median_seconds(lambda: render_markdown(results)))]
    print(f"{len(results.cases):,} case rows, {len(results.candidates)} candidates, {len(results.contracts)} contracts")
    print("| report | render time (median of 3) | size |")
    print("|---|---|---|")
    for name, seconds, text in rows:
        print(f"| {name} | {seconds:.2f} s | {len(text.encode('utf-8')) / 1024:,.0f} KiB |")
    timed = browser_seconds(rows[0][2])
    if timed is None:
        print("headless Chromium: not measured (needs chromium, chromedriver and selenium)")
    else:
        print(f"headless Chromium (median of 3): page loaded and script run {timed[0]:.2f} s; "
              f"problems only + search {timed[1]:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
