"""The vetting page, driven in a real headless Chromium (Debian's
``chromium`` and ``chromium-driver``, through Selenium).

The page under test is the one written for a real run of the cutout task on
the demo repository (its ``records.csv``), plus a synthetic record table of
20,000 sources for the responsiveness bound.  Every browser runs with a
logging proxy as its only way out: a request that would leave the machine
reaches the proxy and is recorded (and refused).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import re
import shutil
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from lsst.analysis.ap.display.annotation import BADGES
from lsst.analysis.ap.outputs.ledger import read_record_csv
from lsst.analysis.ap.outputs.manifests import RECORDS_FILE
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)
from lsst.analysis.ap.vetting import (
    LABEL_NAMES,
    LabelFileError,
    merge_labels,
    read_labels,
    write_vetting_page,
)
from lsst.analysis.ap.vetting import cli as vetting_cli

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
"""The flags of the brief, and the window size of the screenshots."""

QUIET_BROWSER_FLAGS = (
    "--no-default-browser-check",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-search-engine-choice-screen",
    "--no-pings",
    "--dns-prefetch-disable",
    "--disable-features=AutofillServerCommunication,NetworkTimeServiceQuerying,OptimizationHints,"
    "MediaRouter,Translate,InterestFeedContentSuggestions,CertificateTransparencyComponentUpdater",
)
"""Chromium's own background services off, so that the proxy sees only what
the page asks for."""


# A logging proxy: the browser's only route off the machine ---------------------


class _LoggingProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(65536).decode("latin-1").strip()
        if line:
            self.server.requests.append(line)
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@contextlib.contextmanager
def logging_proxy() -> Iterator[_LoggingProxy]:
    proxy = _LoggingProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[str]:
    """Serve ``root`` on a localhost port; yields its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# Browser -------------------------------------------------------------------------


def _find(program: str) -> str:
    path = shutil.which(program) or next(
        (p for p in (f"/usr/bin/{program}", f"/usr/lib/chromium/{program}") if Path(p).exists()), None
    )
    if path is None:
        pytest.fail(
            f"{program} is not installed: the vetting page tests need Debian's chromium and "
            "chromium-driver (listed in requirements/debian-packages.txt; `make bootstrap` installs them)"
        )
    return path


class Browser:
    """A headless Chromium with a fresh profile, a download directory and
    the logging proxy as its only way out.
    """

    def __init__(self, proxy: _LoggingProxy, downloads: Path) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.downloads = downloads
        options = webdriver.ChromeOptions()
        options.binary_location = _find("chromium")
        for flag in CHROMIUM_FLAGS + QUIET_BROWSER_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
        self.driver = webdriver.Chrome(options=options, service=Service(_find("chromedriver")))
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url: str, timeout: float = 20) -> float:
        """Load ``url`` and wait until the page is ready; returns the
        page's own ready time (ms after navigation start).
        """
        driver = self.driver
        driver.get("about:blank")
        driver.get(url)
        ready = WebDriverWait(driver, timeout).until(
            lambda d: d.execute_script("return document.documentElement.dataset.ready || null")
        )
        return float(ready)

    def shown_ids(self) -> list[int]:
        """diaSourceIds of the cards or table rows on the current page."""
        return [
            int(e.get_attribute("data-id")) for e in self.driver.find_elements(By.CSS_SELECTOR, "[data-pos]")
        ]

    def counts(self) -> str:
        return self.driver.find_element(By.ID, "counts").text

    def select(self, element_id: str, value: str) -> None:
        Select(self.driver.find_element(By.ID, element_id)).select_by_value(value)

    def keys(self, *keys: str) -> None:
        """Type ``keys`` where the keyboard focus is, as a user would."""
        for key in keys:
            self.driver.switch_to.active_element.send_keys(key)

    def page_requests(self) -> list[str]:
        """URLs of every request the page's tab made since the last call
        (Chromium's network log of the tab, failed requests included)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def resource_urls(self) -> list[str]:
        return self.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".concat(performance.getEntriesByType('navigation').map(e => e.name))"
        )


@pytest.fixture(scope="module")
def proxy() -> Iterator[_LoggingProxy]:
    with logging_proxy() as server:
        yield server


@pytest.fixture(scope="module")
def browser(proxy, tmp_path_factory) -> Iterator[Browser]:
    chrome = Browser(proxy, tmp_path_factory.mktemp("downloads"))
    try:
        yield chrome
    finally:
        chrome.quit()


# The demo run ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(demo_repo, demo_sources, tmp_path_factory) -> Path:
    """Output directory of a real run on every demo DiaSource, with its page;
    one more source, of a visit without images, fails (``missing_exposure``)."""
    output = tmp_path_factory.mktemp("vetting") / "cutouts"
    config = PlotImageSubtractionCutoutsConfig()
    config.whole_read_min_sources = 1
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output)
    lost = demo_sources.iloc[[0]].assign(diaSourceId=demo_sources["diaSourceId"].max() + 1, visit=999999)
    with demo_repo.butler() as butler:
        result = task.run(pd.concat([demo_sources, lost], ignore_index=True), butler)
    assert result.vetting_page == output / "index.html"
    return output


@pytest.fixture(scope="module")
def records(demo_run) -> pd.DataFrame:
    return read_record_csv((demo_run / RECORDS_FILE).read_bytes(), RECORDS_FILE)


def page_url(output: Path, hash_: str = "") -> str:
    return (output / "index.html").as_uri() + (f"#{hash_}" if hash_ else "")


def wait_for(browser: Browser, condition, timeout: float = 10):
    return WebDriverWait(browser.driver, timeout).until(lambda d: condition())


# Tests -------------------------------------------------------------------------


def test_page_lists_exactly_the_written_sources(browser, demo_run, records):
    written = set(records.loc[records["status"] == "written", "diaSourceId"].astype(int))
    failed = records[records["status"] == "failed"]
    assert written and len(failed), "the demo run should write sources and fail at least one"
    browser.open(page_url(demo_run))
    assert set(browser.shown_ids()) == written
    assert len(browser.shown_ids()) == len(written)
    assert browser.counts().startswith(f"{len(written)} of {len(records)} source(s) shown")
    # The first thumbnail is the run's PNG, loaded at its size.
    first = browser.driver.find_element(By.CSS_SELECTOR, ".card img")
    width = wait_for(browser, lambda: first.get_property("naturalWidth"))
    src = first.get_attribute("src")
    assert src.startswith(demo_run.as_uri() + "/images/")
    assert width > 3 * 30
    # The failed sources, with their reasons, under the failed filter.
    browser.select("f-status", "failed")
    assert set(browser.shown_ids()) == set(failed["diaSourceId"].astype(int))
    text = browser.driver.find_element(By.ID, "grid").text
    for code in failed["reason_code"]:
        assert code in text


def _flag_set(sources: pd.DataFrame, badge_name: str) -> set[int]:
    badge = next(b for b in BADGES if b.name == badge_name)
    columns = [c for c in badge.columns if c in sources.columns]
    return set(
        sources.loc[sources[columns].fillna(False).astype(bool).any(axis=1), "diaSourceId"].astype(int)
    )


@pytest.mark.parametrize("badge", ["DIPOLE", "SAT", "EDGE"])
def test_flag_filter_shows_exactly_the_flagged_sources(browser, demo_run, records, demo_sources, badge):
    written = set(records.loc[records["status"] == "written", "diaSourceId"].astype(int))
    expected = _flag_set(demo_sources, badge) & written
    assert expected and expected != written
    browser.open(page_url(demo_run))
    browser.select("f-flag", badge)
    assert set(browser.shown_ids()) == expected
    # The URL keeps the filter: a new load of it shows the same view.
    url = browser.driver.current_url
    assert f"flag={badge}" in url
    browser.open(url)
    assert Select(browser.driver.find_element(By.ID, "f-flag")).first_selected_option.text == badge
    assert set(browser.shown_ids()) == expected


def test_visit_reliability_filters_and_sort(browser, demo_run, records, demo_sources):
    table = records.merge(demo_sources[["diaSourceId", "reliability", "snr"]], on="diaSourceId")
    table = table[table["status"] == "written"]
    browser.open(page_url(demo_run, "visit=1002&rmin=0.5&sort=snr&dir=desc"))
    expected = table[(table["visit"] == 1002) & (table["reliability"] >= 0.5)]
    expected = expected.sort_values("snr", ascending=False, na_position="last", kind="stable")
    assert browser.shown_ids() == expected["diaSourceId"].astype(int).tolist()
    # Table view, sorted by a header click.
    browser.select("f-view", "table")
    header = browser.driver.find_element(By.CSS_SELECTOR, "th[data-column='detector']")
    header.click()
    shown = browser.shown_ids()
    ordered = expected.sort_values(["detector"], kind="stable")
    assert [int(records.set_index("diaSourceId").loc[i, "detector"]) for i in shown] == ordered[
        "detector"
    ].tolist()
    assert "sort=detector" in browser.driver.current_url


def _wait_for_download(directory: Path, name: str, timeout: float = 10) -> Path:
    path = directory / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and not list(directory.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise AssertionError(f"no download {path}; directory holds {list(directory.iterdir())}")


def test_keyboard_labels_survive_reload_and_merge_back(browser, demo_run, records, demo_sources, tmp_path):
    browser.open(page_url(demo_run))
    ids = browser.shown_ids()
    browser.keys("r", "b", Keys.ARROW_RIGHT, "u", Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_RIGHT, "s")
    expected = {ids[0]: "real", ids[1]: "bogus", ids[3]: "skip"}
    browser.keys(Keys.ARROW_RIGHT, Keys.ENTER)
    detail_title = browser.driver.find_element(By.ID, "detail-title").text
    assert str(ids[5]) in detail_title
    browser.keys("u", Keys.ESCAPE)
    expected[ids[5]] = "unsure"

    def marks() -> dict[int, str]:
        return {
            int(card.get_attribute("data-id")): card.find_element(By.CLASS_NAME, "label-mark").get_attribute(
                "data-label"
            )
            for card in browser.driver.find_elements(By.CSS_SELECTOR, ".card")
        }

    assert {k: v for k, v in marks().items() if v} == expected
    browser.driver.refresh()
    wait_for(browser, lambda: browser.driver.execute_script("return document.documentElement.dataset.ready"))
    assert {k: v for k, v in marks().items() if v} == expected
    assert "labelled: 4" in browser.driver.find_element(By.ID, "label-counts").text

    for stale in browser.downloads.glob("cutout-labels*.csv"):
        stale.unlink()
    browser.driver.find_element(By.ID, "export").click()
    exported = _wait_for_download(browser.downloads, "cutout-labels.csv")
    assert exported.read_text().splitlines()[0] == "diaSourceId,label,time"
    labels = read_labels(exported)
    assert dict(zip(labels["diaSourceId"], labels["label"], strict=True)) == expected
    assert labels["label_time"].notna().all()

    merged = merge_labels(records, labels)
    assert len(merged) == len(records)
    assert merged["diaSourceId"].tolist() == records["diaSourceId"].tolist()
    labelled = merged[merged["label"] != ""]
    assert dict(zip(labelled["diaSourceId"], labelled["label"], strict=True)) == expected

    # The command line does the same, and the page shows the merged labels
    # to a browser that has none of its own.
    target = tmp_path / "labelled.csv"
    assert vetting_cli.main(["merge-labels", str(demo_run), str(exported), "--to", str(target)]) == 0
    from_cli = pd.read_csv(target, keep_default_na=False)
    assert (
        dict(zip(*(from_cli.loc[from_cli["label"] != "", c] for c in ("diaSourceId", "label")), strict=True))
        == expected
    )
    browser.driver.execute_script("localStorage.clear()")
    assert vetting_cli.main(["merge-labels", str(demo_run), str(exported)]) == 0
    catalog = tmp_path / "sources.parquet"
    demo_sources.to_parquet(catalog)
    assert vetting_cli.main(["page", str(demo_run), "--catalog", str(catalog)]) == 0
    browser.open(page_url(demo_run))
    assert {k: v for k, v in marks().items() if v} == expected
    browser.driver.execute_script("localStorage.clear()")
    (demo_run / "records_labelled.csv").unlink()
    assert vetting_cli.main(["page", str(demo_run), "--catalog", str(catalog)]) == 0


def test_label_file_errors_name_line_and_value(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("diaSourceId,label,time\n12,real,2026-01-01T00:00:00Z\n13,maybe,2026-01-01T00:00:00Z\n")
    with pytest.raises(LabelFileError, match=r"line 3: label 'maybe' of diaSourceId 13 is not one of real"):
        read_labels(bad)
    bad.write_text("diaSourceId,label\n12,real\n")
    with pytest.raises(LabelFileError, match=r"missing column\(s\) \['time'\]"):
        read_labels(bad)
    bad.write_text("diaSourceId,label,time\nx12,real,2026-01-01T00:00:00Z\n")
    with pytest.raises(LabelFileError, match="line 2: diaSourceId 'x12' is not an integer"):
        read_labels(bad)
    assert set(LABEL_NAMES) == {"real", "bogus", "unsure", "skip"}


def _labelled(output: Path) -> dict[int, tuple[str, str]]:
    table = read_record_csv((output / "records_labelled.csv").read_bytes(), "records_labelled.csv")
    labels = table["label"].fillna("").astype(str)
    return {
        int(i): (label, str(t))
        for i, label, t in zip(table["diaSourceId"], labels, table["label_time"], strict=True)
        if label
    }


def test_a_second_label_file_keeps_the_labels_merged_before(demo_run, tmp_path, capsys):
    """One label file per vetting session, merged one after the other: the
    labels of the first stay, a later label of the same source wins."""
    output = tmp_path / "run"
    output.mkdir()
    shutil.copy(demo_run / RECORDS_FILE, output / RECORDS_FILE)
    ids = read_record_csv((output / RECORDS_FILE).read_bytes(), RECORDS_FILE)["diaSourceId"].tolist()[:3]
    first = tmp_path / "monday.csv"
    first.write_text(
        f"diaSourceId,label,time\n{ids[0]},real,2026-01-05T10:00:00Z\n{ids[1]},real,2026-01-05T10:01:00Z\n"
    )
    second = tmp_path / "tuesday.csv"
    second.write_text(
        f"diaSourceId,label,time\n{ids[1]},bogus,2026-01-06T09:00:00Z\n{ids[2]},unsure,2026-01-06T09:01:00Z\n"
    )
    assert vetting_cli.main(["merge-labels", str(output), str(first)]) == 0
    assert vetting_cli.main(["merge-labels", str(output), str(second)]) == 0
    assert "3 of" in capsys.readouterr().out.splitlines()[-1]
    labelled = _labelled(output)
    assert {source: label for source, (label, _) in labelled.items()} == {
        ids[0]: "real",
        ids[1]: "bogus",
        ids[2]: "unsure",
    }
    assert labelled[ids[0]][1] == "2026-01-05T10:00:00.000+00:00"
    # A source no longer in records.csv: its earlier label cannot be kept, and the command says so.
    lines = (output / RECORDS_FILE).read_text().splitlines()
    (output / RECORDS_FILE).write_text(
        "\n".join(line for line in lines if not line.startswith(str(ids[0]))) + "\n"
    )
    assert vetting_cli.main(["merge-labels", str(output), str(second)]) == 0
    assert "1 label(s) merged before name sources that are no longer in" in capsys.readouterr().err
    assert ids[0] not in _labelled(output) and _labelled(output)[ids[1]][0] == "bogus"
    # A --to file that is not a labelled record table is not overwritten.
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert vetting_cli.main(["merge-labels", str(output), str(second), "--to", str(other)]) == 2
    assert "exists but is not a table merge-labels wrote" in capsys.readouterr().err
    assert other.read_text() == "a,b\n1,2\n"


def test_label_files_of_every_shape_merge_or_fail_in_one_line(demo_run, tmp_path, capsys):
    """The page's export before any label (a header only), a time far in the
    future and an unsigned 64-bit id merge; a file that is not UTF-8 fails
    naming itself (each of these was a traceback or an unnamed error)."""
    output = tmp_path / "run"
    output.mkdir()
    records = (demo_run / RECORDS_FILE).read_text().splitlines()
    first_id = records[1].split(",")[0]
    big = 2**64 - 1
    (output / RECORDS_FILE).write_text(
        "\n".join([records[0], records[1].replace(first_id, str(big), 1)]) + "\n"
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("diaSourceId,label,time\n")
    assert vetting_cli.main(["merge-labels", str(output), str(labels)]) == 0
    assert _labelled(output) == {}
    labels.write_text(f"diaSourceId,label,time\n{big},real,3000-01-01T00:00:00Z\n")
    assert vetting_cli.main(["merge-labels", str(output), str(labels)]) == 0
    assert _labelled(output) == {big: ("real", "3000-01-01T00:00:00.000+00:00")}
    labels.write_bytes(b"diaSourceId,label,time\n12,real,2026-01-01T00:00:00Z\n# caf\xe9\n")
    capsys.readouterr()
    assert vetting_cli.main(["merge-labels", str(output), str(labels)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"cutoutVetting: {labels}: cannot read the label file: it is not UTF-8 text"), line


CHROMIUM_SERVICE_HOSTS = re.compile(
    r"^(CONNECT|GET|POST) (http://)?([a-z0-9-]+\.)*(google\.com|googleapis\.com|gstatic\.com|duckduckgo\.com)[:/]"
)
"""Chromium's own services (time, updates, sign-in, the default search
engine), which it calls even with background networking off; the proxy
refuses them.  A request to any other host would be the page's."""


def test_no_request_leaves_the_machine(browser, proxy, demo_run):
    before = len(proxy.requests)
    browser.page_requests()  # drop the log of earlier tests
    browser.open(page_url(demo_run, "status=all"))
    # Open a source with frames, the Zooniverse preview, the table view, filters.
    browser.keys(Keys.ENTER, "z")
    wait_for(browser, lambda: browser.driver.find_element(By.ID, "zooniverse").is_displayed())
    zoo_text = browser.driver.find_element(By.ID, "zooniverse").text
    shown_id = browser.driver.execute_script("return window.vetting.state().open")
    assert shown_id and shown_id not in zoo_text  # hidden metadata is not shown to volunteers
    assert browser.driver.find_elements(By.CSS_SELECTOR, "#zoo-image img")
    browser.keys(Keys.ESCAPE)
    browser.select("f-view", "table")
    browser.select("f-flag", "DIPOLE")
    browser.driver.find_element(By.ID, "export").click()
    urls = browser.resource_urls()
    assert urls and all(url.startswith("file://") for url in urls), urls
    requested = browser.page_requests()
    assert any(url.endswith(".png") for url in requested)
    assert all(url.startswith(("file://", "blob:", "data:", "about:")) for url in requested), requested
    with http_server(demo_run) as root:
        browser.open(root + "index.html")
        browser.keys(Keys.ENTER, "z", Keys.ARROW_RIGHT)
        urls = browser.resource_urls()
        assert any(url.endswith(".png") for url in urls)
        assert all(url.startswith(root) for url in urls), urls
        requested = browser.page_requests()
        assert all(url.startswith((root, "blob:", "data:", "about:")) for url in requested), requested
        assert set(browser.shown_ids())
    page_made = [line for line in proxy.requests[before:] if not CHROMIUM_SERVICE_HOSTS.match(line)]
    assert page_made == []


# 20,000 sources ----------------------------------------------------------------


def synthetic_records(n: int, image: Path, output: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` records all showing one PNG, and their DiaSource values."""
    rng = np.random.default_rng(13)
    ids = 170_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 7919
    relpath = "images/sample.png"
    (output / "images").mkdir(parents=True, exist_ok=True)
    shutil.copy(image, output / relpath)
    status = np.where(rng.random(n) < 0.05, "failed", "written")
    records = pd.DataFrame(
        {
            "diaSourceId": ids,
            "instrument": "LSSTCam",
            "visit": rng.integers(2025_0000_0000, 2025_0000_0400, n),
            "detector": rng.integers(0, 189, n),
            "band": rng.choice(list("ugrizy"), n),
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-80, 10, n),
            "path": np.where(status == "written", relpath, ""),
            "status": status,
            "reason_code": np.where(status == "failed", "no_data", ""),
            "reason": np.where(status == "failed", "the template stamp has no valid pixels", ""),
            "output_path": str(output),
            "url_root": "",
        }
    )
    sources = pd.DataFrame(
        {
            "diaSourceId": ids,
            "diaObjectId": 990_000_000_000_000_000 + rng.integers(0, n // 4, n),
            "snr": rng.lognormal(2.5, 1.0, n),
            "psfFlux": rng.normal(0, 5000, n),
            "psfFluxErr": rng.uniform(100, 300, n),
            "reliability": rng.uniform(0, 1, n),
            "isDipole": rng.random(n) < 0.1,
            "pixelFlags_saturated": rng.random(n) < 0.05,
            "pixelFlags_edge": rng.random(n) < 0.03,
        }
    )
    return records, sources


def test_20000_sources_are_interactive_within_3_s(browser, demo_run, tmp_path):
    output = tmp_path / "big"
    sample = next((demo_run / "images").rglob("*.png"))
    records, sources = synthetic_records(20_000, sample, output)
    files = write_vetting_page(output, records, sources)
    assert files.n_records == 20_000
    start = time.perf_counter()
    ready_ms = browser.open(page_url(output))
    # Interactive: a filter answers and a key press labels.
    browser.select("f-flag", "DIPOLE")
    browser.keys("r")
    wait_for(browser, lambda: "labelled: 1" in browser.driver.find_element(By.ID, "label-counts").text)
    elapsed = time.perf_counter() - start
    written = records["status"] == "written"
    expected = int((sources["isDipole"] & written).sum())
    assert browser.counts().startswith(f"{expected} of 20000 source(s) shown")
    assert len(browser.shown_ids()) == 100
    assert ready_ms < 3000, f"page ready after {ready_ms:.0f} ms"
    assert elapsed < 3.0, f"loaded, filtered and labelled in {elapsed:.2f} s"
    # A deep page of everything, sorted, opened from its URL.
    browser.open(page_url(output, "status=all&sort=reliability&dir=desc&page=137"))
    table = records.merge(sources, on="diaSourceId").sort_values("reliability", ascending=False)
    assert browser.shown_ids() == table["diaSourceId"].iloc[13700:13800].tolist()
    assert "page 138 of 200" in browser.driver.find_element(By.ID, "page-info").text


def test_bad_records_directory_exit_code(tmp_path, capsys):
    assert vetting_cli.main(["page", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"cutoutVetting: {tmp_path / 'records.csv'} does not exist: is {tmp_path} the output directory "
        "of a cutout run?\n"
    )


def test_page_catalog_with_a_repeated_or_missing_id_is_refused(demo_run, demo_sources, tmp_path, capsys):
    """A catalog in which one diaSourceId has two rows (whose values would
    the page show?) or that has no diaSourceId column is refused naming
    the file, and the page is left as it was; before, the last row won
    silently, or the page was written with no catalog values."""
    page = demo_run / "vetting" / "records.js"
    before = page.read_bytes()
    catalog = tmp_path / "sources.csv"
    repeated = pd.concat([demo_sources, demo_sources.iloc[[3]].assign(reliability=0.0123)], ignore_index=True)
    repeated.to_csv(catalog, index=False)
    assert vetting_cli.main(["page", str(demo_run), "--catalog", str(catalog)]) == 2
    first = demo_sources["diaSourceId"].iloc[3]
    assert capsys.readouterr().err == (
        f"cutoutVetting: Catalog {catalog}: column 'diaSourceId' must be unique: 2 rows share a value "
        f"(e.g. {first} in rows 3, {len(demo_sources)}); each DiaSource can have one cutout: remove the "
        "duplicate rows.\n"
    )
    demo_sources.drop(columns="diaSourceId").to_csv(catalog, index=False)
    assert vetting_cli.main(["page", str(demo_run), "--catalog", str(catalog)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        f"cutoutVetting: Catalog {catalog}: no 'diaSourceId' column, by which the page"
    ), error
    assert page.read_bytes() == before


def test_records_cut_mid_row_are_refused(demo_run, tmp_path, capsys):
    """A records.csv cut in the middle of its last row (a partial copy)
    is refused by both commands with one line naming it; the page showed
    the cut row with empty values, and merge-labels wrote it on."""
    import shutil

    output = tmp_path / "cut"
    shutil.copytree(demo_run, output)
    data = (output / "records.csv").read_bytes()
    (output / "records.csv").write_bytes(data[: data.rindex(b",", 0, len(data) - 1)])
    page = (output / "vetting" / "records.js").read_bytes()
    labels = tmp_path / "labels.csv"
    labels.write_text("diaSourceId,label,time\n")
    for argv in (["page", str(output)], ["merge-labels", str(output), str(labels)]):
        assert vetting_cli.main(argv) == 2
        assert capsys.readouterr().err == (
            f"cutoutVetting: {output / 'records.csv'} is truncated (its last line is incomplete)\n"
        )
    assert (output / "vetting" / "records.js").read_bytes() == page
    assert not (output / "records_labelled.csv").exists()


@pytest.mark.parametrize("command", [["page"], ["merge-labels", "--to", "labelled.csv"]])
def test_missing_directory_is_said_once(tmp_path, capsys, command):
    missing = tmp_path / "no-such-run"
    argv = [command[0], str(missing), *(["labels.csv"] if command[0] == "merge-labels" else []), *command[1:]]
    assert vetting_cli.main(argv) == 2
    assert capsys.readouterr().err == f"cutoutVetting: {missing}: no such directory\n"
    assert not missing.exists()


# DiaSource rows with the real APDB schema ------------------------------------------

APDB_COLUMNS = Path(__file__).parent / "data" / "apdb_DiaSource_columns.csv"
"""The DiaSource columns of sdm_schemas' apdb.yaml (name, type, nullable)."""


def apdb_schema_sources(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` DiaSource rows with every column of the APDB schema (sdm_schemas
    apdb.yaml), its types, and NULLs in every nullable column of the last row.
    """
    schema = pd.read_csv(APDB_COLUMNS)
    dtypes = {
        "long": "Int64",
        "int": "Int32",
        "short": "Int16",
        "double": "Float64",
        "float": "Float32",
        "boolean": "boolean",
        "char": "string",
        "string": "string",
    }
    columns = {}
    for name, kind, nullable in zip(schema["name"], schema["datatype"], schema["nullable"], strict=True):
        if kind == "boolean":
            values = pd.array(rng.random(n) < 0.3, dtype="boolean")
        elif kind in ("char", "string"):
            values = pd.array(rng.choice(list("ugrizy"), n), dtype="string")
        elif kind in ("double", "float"):
            values = pd.array(rng.normal(0.5, 0.2, n), dtype=dtypes[kind])
        else:
            values = pd.array(rng.integers(1, 1000, n), dtype=dtypes[kind])
        if bool(nullable):
            values[n - 1] = pd.NA
        columns[name] = values
    frame = pd.DataFrame(columns)
    # Real ids use all 64 bits' worth of digits.
    frame["diaSourceId"] = pd.array(
        9_223_372_036_854_000_000 + np.arange(n, dtype=np.int64) * 977, dtype="Int64"
    )
    frame["diaObjectId"] = pd.array(
        [9_100_000_000_000_000_123 + (i % 3) for i in range(n - 1)] + [pd.NA], dtype="Int64"
    )
    return frame


def test_page_of_sources_with_the_real_apdb_schema(browser, demo_run, tmp_path):
    rng = np.random.default_rng(7)
    sources = apdb_schema_sources(12, rng)
    assert len(sources.columns) == 103
    output = tmp_path / "schema"
    sample = next((demo_run / "images").rglob("*.png"))
    records, _ = synthetic_records(12, sample, output)
    records["status"] = "written"
    records["path"] = "images/sample.png"
    records["diaSourceId"] = sources["diaSourceId"].astype("int64")
    write_vetting_page(output, records, sources)
    browser.open(page_url(output, "sort=diaSourceId&dir=desc"))
    # 64-bit ids arrive exactly, in numeric order.
    assert browser.shown_ids() == sorted(sources["diaSourceId"].astype(int), reverse=True)
    # Nullable booleans: a flag filter shows exactly the rows where it is true.
    browser.select("f-flag", "CR")
    cr = sources["pixelFlags_cr"].fillna(False) | sources["pixelFlags_crCenter"].fillna(False)
    assert set(browser.shown_ids()) == set(sources.loc[cr, "diaSourceId"].astype(int))
    # The row of NULLs: shown as missing, and it has no DiaObject frames.
    last = int(sources["diaSourceId"].iloc[-1])
    browser.open(page_url(output, f"open={last}"))
    record = browser.driver.find_element(By.ID, "detail-record").text
    assert f"diaSourceId {last}" in record
    assert "snr —" in record and "reliability —" in record and "diaObjectId —" in record
    assert browser.driver.find_element(By.ID, "detail-frames").text == ""
    # A source with a DiaObject shows the frames of its object.
    first = int(sources["diaSourceId"].iloc[0])
    browser.open(page_url(output, f"open={first}"))
    frames = browser.driver.find_element(By.ID, "detail-frames").text
    same_object = int((sources["diaObjectId"] == sources["diaObjectId"].iloc[0]).sum())
    assert f"DiaObject {sources['diaObjectId'].iloc[0]}: {same_object} frames" in frames


def test_sequence_frames_from_optional_columns(browser, demo_run, tmp_path):
    output = tmp_path / "sequence"
    pngs = sorted((demo_run / "images").rglob("*.png"))[:3]
    records, sources = synthetic_records(8, pngs[0], output)
    records["status"] = "written"
    records["path"] = "images/sample.png"
    frames = []
    for k, png in enumerate(pngs):
        shutil.copy(png, output / "images" / f"frame{k}.png")
        frames.append(f"images/frame{k}.png")
    records["frame_paths"] = ["", ";".join(frames)] + [""] * 6
    records["sequence_path"] = ["", "images/frame0.png"] + [""] * 6
    write_vetting_page(output, records, sources[["diaSourceId", "snr"]])
    middle = int(records["diaSourceId"].iloc[1])
    browser.open(page_url(output, f"open={middle}"))
    box = browser.driver.find_element(By.ID, "detail-frames")
    assert "Sequence of the DiaObject: 4 image(s)" in box.text
    sources_shown = [img.get_attribute("src") for img in box.find_elements(By.TAG_NAME, "img")]
    assert [s.rsplit("/", 1)[-1] for s in sources_shown] == [
        "frame0.png",
        "frame0.png",
        "frame1.png",
        "frame2.png",
    ]
    wait_for(
        browser,
        lambda: all(img.get_property("naturalWidth") > 0 for img in box.find_elements(By.TAG_NAME, "img")),
    )
    # A record without them shows no frames.
    browser.open(page_url(output, f"open={int(records['diaSourceId'].iloc[0])}"))
    assert browser.driver.find_element(By.ID, "detail-frames").text == ""


def test_a_very_long_band_keeps_the_filters_on_screen(browser, demo_run, tmp_path):
    """A band of 5,000 characters (hostile, or a broken catalog) is offered
    in the band filter, and shown in its card, without pushing the filters
    off the page or widening it."""
    output = tmp_path / "long-band"
    sample = next((demo_run / "images").rglob("*.png"))
    records, sources = synthetic_records(6, sample, output)
    records["status"] = "written"
    records["path"] = "images/sample.png"
    long_band = "r" * 5000
    records.loc[0, "band"] = long_band
    write_vetting_page(output, records, sources)
    browser.open(page_url(output))
    window = browser.driver.execute_script("return document.documentElement.clientWidth")
    for element_id in ("f-band", "f-status", "f-sort", "f-view"):
        element = browser.driver.find_element(By.ID, element_id)
        right = browser.driver.execute_script("return arguments[0].getBoundingClientRect().right", element)
        assert 0 < right <= window, (element_id, right, window)
    # Nor does its card's caption run across the page.
    scroll = browser.driver.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= window
    browser.select("f-band", long_band)
    assert browser.shown_ids() == [int(records.loc[0, "diaSourceId"])]


def test_a_sub_flag_alone_sets_its_badge_in_the_flags_column(tmp_path):
    """``shape_flag_not_contained`` without ``shape_flag`` (a catalog that
    does not set the general flag) gives the SHAPE badge, as on the PNG."""
    from PIL import Image

    image = tmp_path / "sample.png"
    Image.new("RGB", (4, 4)).save(image)
    records, sources = synthetic_records(4, image, tmp_path / "out")
    sources["shape_flag"] = False
    sources["shape_flag_not_contained"] = [True, False, False, True]
    sources["isDipole"] = [False, False, True, True]
    write_vetting_page(tmp_path / "out", records, sources)
    text = (tmp_path / "out" / "vetting" / "records.js").read_text()
    payload = json.loads(text.removeprefix("window.CUTOUT_RECORDS = ").rstrip().rstrip(";"))
    names = [c["name"] for c in payload["columns"]]
    assert "shape_flag_not_contained" not in names
    flags = payload["values"][names.index("flags")]
    assert flags == ["SHAPE", "", "DIPOLE", "DIPOLE SHAPE"]
