"""emc report --html in a real browser: headless Chromium (Debian's chromium and chromium-driver, which
scripts/setup --browser installs) driven by Selenium. The log is made here from the committed search log: the same
trials under several models, families and label conditions, one of them named with markup a page must not run."""
import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, emc, emc_binary

FIXTURE = os.path.join(ROOT, "Tests", "EMCSearchTests", "Fixtures", "log-format-2.jsonl")
HOSTILE_DATA = '<img src=x onerror="window.PWNED=1">'
HOSTILE_MODEL = 'mlp:width=4"><script>window.PWNED=2</script>'

# (model, parameters, scale of every n, data): the fixture's trials at another scale make another boundary.
CONFIGURATIONS = [
    ("mlp:width=4,depth=1,act=relu", 3190, 1.0, "true"),
    ("mlp:width=8,depth=1,act=relu", 6370, 1.6, "true"),
    ("mlp:width=16,depth=1,act=relu", 12730, 2.5, "true"),
    ("cnn:channels=4,layers=1", 2100, 1.3, "true"),
    ("cnn:channels=8,layers=2", 5200, 2.2, "true"),
    ("mlp:width=4,depth=1,act=relu", 3190, 0.3, "random"),
    ("mlp:width=8,depth=1,act=relu", 6370, 0.45, "random"),
    ("cnn:channels=4,layers=1", 2100, 0.4, "random"),
    (HOSTILE_MODEL, 3190, 0.8, "hostile"),
]


def hexdigest(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def make_log(path):
    base = [json.loads(line) for line in open(FIXTURE)]
    with open(path, "w") as out:
        for model, parameters, scale, data in CONFIGURATIONS:
            config = hexdigest(model, data)
            for record in base:
                r = dict(record)
                r["config"] = config
                r["key"] = hexdigest(config, record["key"])
                r["model"] = model
                r["parameters"] = parameters
                r["n"] = max(1, round(record["n"] * scale))
                r["wrong"] = min(r["wrong"], r["n"])
                if data == "random":
                    r["data"] = "fashion-mnist+random-labels"
                    r["variant"] = "labels=random,classes=10,seed=0"
                    r["dataContentId"] = "random-" + record["dataContentId"]
                    r["rootContentId"] = record["dataContentId"]
                elif data == "hostile":
                    r["data"] = HOSTILE_DATA
                out.write(json.dumps(r, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("html")
    log = base / "search.jsonl"
    make_log(log)
    folder = base / "report"
    emc("report", log, "--html", folder, "--quiet")
    expected = json.loads(emc("report", log, "--json", "--findings"))
    return log, folder, expected


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail("Chromium or its driver is missing: scripts/setup --browser installs chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def page_json(folder):
    text = (folder / "index.html").read_text()
    match = re.search(r'<script type="application/json" id="emc-report">(.*?)</script>', text, re.S)
    assert match, "the page holds no report JSON"
    return json.loads(match.group(1))


def visible_rows(driver):
    return driver.find_elements("css selector", "#table tbody tr")


def test_the_page_embeds_what_report_json_prints(report):
    _, folder, expected = report
    data = page_json(folder)
    # The findings' evidence lines are findings.js, loaded after the page draws; put back, the data is the JSON's.
    script = (folder / "findings.js").read_text()
    assert script.startswith("emcFindings(") and script.endswith(");\n")
    evidence = json.loads(script[len("emcFindings("):-3])
    assert all(f["evidence"] == [] for f in data["findings"])
    for f, lines in zip(data["findings"], evidence):
        f["evidence"] = lines
    assert data == expected
    assert len(expected["report"]["rows"]) == len(CONFIGURATIONS)
    for i in range(len(CONFIGURATIONS)):
        assert (folder / "detail" / f"{i}.js").is_file()


def test_names_are_escaped_in_the_files(report):
    _, folder, _ = report
    files = [folder / "index.html", folder / "findings.js"] + sorted((folder / "detail").iterdir())
    for f in files:
        text = f.read_text()
        assert "<img src=x" not in text and "<script>window.PWNED" not in text, f"markup from a name reached {f.name} unescaped"


def test_the_page_in_headless_chromium(report, browser, tmp_path):
    _, folder, expected = report
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get((folder / "index.html").as_uri())
    WebDriverWait(browser, 20).until(lambda d: len(visible_rows(d)) > 0 and d.execute_script("return window.EMC_FINDINGS_LOADED === true"))
    # The data the page drew from is the report's.
    assert browser.execute_script("return window.EMC_REPORT") == expected
    # Every configuration of the log is a row (one page holds them all here).
    rows = visible_rows(browser)
    assert len(rows) == len(CONFIGURATIONS)
    assert "of 9" in browser.find_element("id", "count").text
    # The hostile name is shown as text, and nothing it holds ran.
    assert any(HOSTILE_DATA in r.text for r in rows)
    assert browser.execute_script("return window.PWNED === undefined")
    assert browser.find_elements("css selector", "#table img, #table script") == []

    # Filtering hides rows, and showing all again brings them back.
    Select(browser.find_element("css selector", "select[data-filter=family]")).select_by_value("=cnn")
    rows = visible_rows(browser)
    assert len(rows) == 3
    models = [r.find_elements("tag name", "td")[1].text for r in rows]
    assert all(m.startswith("cnn:") for m in models), models
    assert "filtered from 9" in browser.find_element("id", "count").text
    Select(browser.find_element("css selector", "select[data-filter=family]")).select_by_value("")
    assert len(visible_rows(browser)) == len(CONFIGURATIONS)
    browser.find_element("css selector", "input[name=search]").send_keys("random")
    assert len(visible_rows(browser)) == 3
    browser.execute_script("const s = document.querySelector('input[name=search]'); s.value = ''; s.dispatchEvent(new Event('input'))")
    assert len(visible_rows(browser)) == len(CONFIGURATIONS)

    # Sorting orders rows: by parameters, ascending then descending.
    header = browser.find_element("css selector", "th[data-key=parameters] button")
    header.click()
    column = column_of(browser, "parameters")
    params = [int(r.find_elements("tag name", "td")[column].text.replace(",", "")) for r in visible_rows(browser)]
    assert params == sorted(params)
    assert browser.find_element("css selector", "th[data-key=parameters]").get_attribute("aria-sort") == "ascending"
    header.click()
    params = [int(r.find_elements("tag name", "td")[column].text.replace(",", "")) for r in visible_rows(browser)]
    assert params == sorted(params, reverse=True)

    # A detail view opens from a row: its curves (the SVG emc drew) and its trials.
    first = visible_rows(browser)[0]
    index = int(first.get_attribute("data-index"))
    first.click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements("css selector", "#detail table.trials tbody tr"))
    detail = browser.find_element("id", "detail")
    assert detail.is_displayed()
    trials = browser.find_elements("css selector", "#detail table.trials tbody tr")
    assert len(trials) == 19
    assert browser.find_elements("css selector", "#detail .svg svg line")
    assert browser.current_url.endswith(f"#config-{index}")
    # The plot panels: one per family and label condition, a point per configuration.
    assert len(browser.find_elements("css selector", "#plot-panels .panel")) >= 4
    assert len(browser.find_elements("css selector", "#plot-panels .point")) == len(CONFIGURATIONS)
    # The findings with their verdicts, and each one's evidence once opened.
    findings = browser.find_elements("css selector", "#findings .finding")
    assert len(findings) == len(expected["findings"])
    findings[1].find_element("tag name", "summary").click()
    lines = [li.text for li in findings[1].find_elements("css selector", "ul.evidence li")]
    assert lines == expected["findings"][1]["evidence"][:200]

    browser.find_element("id", "close-detail").click()
    assert not browser.find_element("id", "detail").is_displayed()

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    shot = os.environ.get("EMC_REPORT_SCREENSHOT") or str(tmp_path / "report.png")
    browser.find_elements("css selector", "#table tbody tr")[0].click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements("css selector", "#detail table.trials tbody tr"))
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(shot)
    assert os.path.getsize(shot) > 10_000


def column_of(browser, key):
    headers = [th.get_attribute("data-key") for th in browser.find_elements("css selector", "#table thead th")]
    return headers.index(key)


def test_a_missing_detail_file_is_said_on_the_page(report, browser, tmp_path):
    _, folder, _ = report
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "detail" / "0.js").unlink()
    browser.get((copy / "index.html").as_uri() + "#config-0")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: "missing" in d.find_element("id", "detail").text)


def test_a_non_empty_folder_is_refused_without_force(report, tmp_path):
    log, folder, _ = report
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    result = subprocess.run([emc_binary(), "report", str(log), "--html", str(other)], capture_output=True, text=True)
    assert result.returncode != 0 and "not empty" in result.stderr and "--force" in result.stderr
    assert not (other / "index.html").exists()
    # With --force the report is written beside the file, which stays.
    emc("report", log, "--html", other, "--force", "--quiet")
    assert (other / "index.html").is_file() and (other / "notes.txt").read_text() == "keep me"
