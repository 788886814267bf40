"""Rendering the leaderboard: text formats, the labelled reported table, the static site in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leaderboard_kit import blend, reference_record, short_protocol, write_frames
from synthetic import protocol_file

from m3svd.cli import main
from m3svd.leaderboard import LeaderboardError, build, load_reported, render, render_reported, submit, write_site
from m3svd.leaderboard.figures import bootstrap_positions
from m3svd.leaderboard.render import REPORTED_LABEL, packaged_reported, reported_groups
from m3svd.leaderboard.schema import OVERALL

REPO_LEADERBOARD = Path(__file__).resolve().parents[1] / "leaderboard"
NAMES = {0.25: "Charlie", 0.5: "Alpha", 0.75: "Bravo"}  # alphabetical order differs from weight order


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("board")
    protocol = short_protocol(base)
    lb = base / "lb"
    for weight, name in NAMES.items():
        submit(write_frames(base / name, blend(weight)), name, protocol, leaderboard_dir=lb,
               metadata={"paper": "https://example.org/paper", "training_data": "none"})
    return lb, build(lb)


WIDE_NAMES = {0.3: "A very long method name that keeps going (variant 2)", 0.6: "Mix"}


@pytest.fixture(scope="module")
def with_references(tmp_path_factory):
    """A protocol of 11 image and 2 temporal metrics (4 of them ranked): two entries, one with a long name, then
    reference records of the toolkit's ``average`` and ``ir``. Returns (lb, table before, table after, fused)."""
    base = tmp_path_factory.mktemp("refs")
    protocol = protocol_file(base / "wide.toml", id="wide-sample", layouts=["sample"], folders=["sample"], split=None,
                             image=["en", "sd", "sf", "ag", "mi", "scd", "qabf", "nabf", "ssim", "psnr", "cc"],
                             temporal=["flicker", "tgf"],
                             ranking='[ranking.groups]\ninformation = {metrics = ["mi"], weight = 1}\n'
                                     'structure = {metrics = ["qabf", "ssim"], weight = 1}\n'
                                     'temporal = {metrics = ["tgf"], weight = 1}')
    lb, fused = base / "lb", base / "fused"
    for weight, name in WIDE_NAMES.items():
        submit(write_frames(fused / name, blend(weight)), name, protocol, leaderboard_dir=lb)
    plain = build(lb)
    for method in ("average", "ir"):
        reference_record(lb, protocol, method)
    return lb, plain, build(lb), fused


def _order(table) -> list[str]:
    overall = table[table["clip"] == OVERALL].drop_duplicates("submission")
    return list(overall.sort_values(["score", "label"])["label"])


def test_table_and_markdown_show_directions_and_score(board):
    _, table = board
    text = render(table, "table")
    lines = text.splitlines()
    assert lines[0].startswith("protocol short-sample@1 · sha256 ") and "3 verified submission(s)" in lines[0]
    assert "ranked by score = weighted mean of per-metric ranks" in lines[0]
    assert "primary (en, sd, nabf) 100%" in lines[0]
    assert lines[1].split() == ["#", "method", "score↓", "en↑", "sd↑", "nabf↓"]
    assert [line.split()[1] for line in lines[2:]] == _order(table)
    markdown = render(table, "markdown").splitlines()
    assert markdown[2] == "| # | method | score↓ | en↑ | sd↑ | nabf↓ |" and markdown[3].startswith("|---:|---|")
    assert len(markdown) == 4 + 3


def test_csv_and_json_carry_the_exact_values(board):
    _, table = board
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [r["method"] for r in rows] == _order(table)
    overall = table[table["clip"] == OVERALL].set_index(["label", "metric"])
    for r in rows:
        assert float(r["sd↑"]) == overall.loc[(r["method"], "sd"), "value"]
    doc = json.loads(render(table, "json"))
    assert doc[0]["protocol"] == "short-sample@1" and doc[0]["verified"] is True
    first = doc[0]["rows"][0]
    assert first["position"] == 1 and first["metrics"]["nabf"]["higher_is_better"] is False
    assert first["metrics"]["en"]["ci_low"] <= first["metrics"]["en"]["value"] <= first["metrics"]["en"]["ci_high"]


def test_protocol_filter_and_empty_boards(board, tmp_path):
    _, table = board
    assert render(table, "table", "short-sample") == render(table, "table", "short-sample@1")
    with pytest.raises(LeaderboardError, match="no verified submissions for protocol 'short-smaple'.*did you mean"):
        render(table, "table", "short-smaple")
    with pytest.raises(LeaderboardError, match="unknown format 'html'"):
        render(table, "html")
    (tmp_path / "empty").mkdir()
    empty = build(tmp_path / "empty")
    assert render(empty, "table").startswith("no verified submissions yet") and render(empty, "json") == "[]"


def test_the_reported_table_is_sourced_labelled_and_never_ranked(board, tmp_path):
    reported = load_reported(REPO_LEADERBOARD)
    assert len(reported) > 100 and (reported["source"] != "").all() and (reported["reference"] != "").all()
    assert {"VideoFusion", "UniVF", "SDMFusion"} <= set(reported["method"])
    groups = reported_groups(reported)
    vf = next(g for g in groups if g["source"].startswith("VideoFusion") and g["dataset"] == "M3SVD"
              and "flowd" in g["metrics"])
    assert vf["wide"].loc["VideoFusion", "flowd"] == "3.294" and vf["directions"]["flowd"] is False
    text = render_reported(reported)
    assert text.startswith(REPORTED_LABEL) and "flowd↓" in text
    lb, _ = board
    mixed = tmp_path / "lb"
    shutil.copytree(lb, mixed, ignore=shutil.ignore_patterns(".lock", ".staging"))
    shutil.copy(packaged_reported(), mixed / "reported.csv")
    ranked = build(mixed)
    assert set(ranked["method"]) == set(NAMES.values())  # papers' rows never enter the verified table


def test_repository_leaderboard_holds_only_records_and_the_reported_table():
    derived = {"leaderboard.parquet", "index.json", "site"}  # rebuilt from the records
    ignored = {".lock", ".staging"}  # git-ignored traces of a local `m3svd submit`
    allowed = {"README.md", ".gitignore", "reported.csv", "methods.csv", "submissions"} | derived | ignored
    assert {p.name for p in REPO_LEADERBOARD.iterdir()} <= allowed
    for record in (REPO_LEADERBOARD / "submissions").glob("*/manifest.json"):
        manifest = json.loads(record.read_text())
        assert manifest["complete"] is True and manifest["protocol"]["id"] != "sample", record


def test_cli_leaderboard_formats_build_and_reported(board, tmp_path, capsys):
    lb, table = board
    assert main(["leaderboard", "--dir", str(lb), "--format", "markdown"]) == 0
    assert capsys.readouterr().out.strip() == render(table, "markdown")
    assert main(["leaderboard", "build", "--dir", str(lb), "--protocol", "short-sample"]) == 0
    assert "wrote" in capsys.readouterr().err and (lb / "leaderboard.parquet").is_file()
    assert main(["leaderboard", "--reported", "--dir", str(REPO_LEADERBOARD)]) == 0
    assert capsys.readouterr().out.startswith("REPORTED")
    assert main(["leaderboard", "--dir", str(tmp_path / "none")]) == 2
    assert "no leaderboard folder" in capsys.readouterr().err


def test_reference_rows_are_marked_and_never_ranked(with_references):
    _, plain, refs, _ = with_references
    overall = refs[refs["clip"] == OVERALL]
    marked = overall.drop_duplicates("submission").set_index("method")["reference"]
    assert marked.to_dict() == {**{n: False for n in WIDE_NAMES.values()}, "Average": True, "IR": True}
    assert overall[overall["reference"]][["rank", "score", "position"]].isna().all().all()
    columns = ["rank", "score", "position"]
    before = plain[plain["clip"] == OVERALL].set_index(["submission", "metric"])[columns].sort_index()
    after = overall[~overall["reference"]].set_index(["submission", "metric"])[columns].sort_index()
    pd.testing.assert_frame_equal(after, before)  # references shift no entry's rank
    lines = render(refs, "table").splitlines()
    assert "2 verified submission(s) + 2 reference row(s) (ref, not ranked)" in lines[0]
    assert [line.split()[:2] for line in lines[-2:]] == [["ref", "Average"], ["ref", "IR"]]
    doc = json.loads(render(refs, "json"))[0]["rows"]
    assert [(r["position"], r["reference"]) for r in doc] == [(1, False), (2, False), (None, True), (None, True)]


def test_bootstrap_without_resampling_gives_the_tables_order(with_references):
    _, _, table, _ = with_references
    submissions, labels, counts = bootstrap_positions(table, "wide-sample@1", resamples=[[0], [0], [0]])
    first = table[(table["clip"] == OVERALL) & ~table["reference"]].drop_duplicates("submission")
    assert labels == _order(first) and counts.sum(axis=1).tolist() == [3, 3]
    positions = first.set_index("submission")["position"]
    assert [int(np.argmax(row)) + 1 for row in counts] == [int(positions[s]) for s in submissions]


def test_site_is_self_contained_and_refuses_foreign_folders(board, tmp_path):
    lb, table = board
    site = write_site(table, tmp_path / "site", lb, reported=load_reported(REPO_LEADERBOARD))
    pages = [site / "index.html", site / "reported.html", *sorted((site / "methods").glob("*.html")),
             *sorted((site / "cards").glob("*.html"))]
    assert len(pages) == 2 + 3 + 3
    for page in pages:
        text = page.read_text()
        assert "<script src" not in text and "stylesheet" not in text and 'src="http' not in text
    assert "Entropy of the uint8 grey fused frame" in (site / "cards" / "en.html").read_text()  # metrics/cards/en.md
    images = sorted((site / "img" / "short-sample-1").glob("*.png"))
    assert [p.name for p in images] == sorted(["rank-stability.png"] + [f"frames-{m}.png" for m in ("en", "sd",
                                                                                                       "nabf")])
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 200_000 for p in images)
    assert "qualitative strip: records keep hashes, not frames" in (site / "index.html").read_text()
    write_site(table, site, lb)  # a site is replaced as a whole
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(LeaderboardError, match="exists and is not an m3svd leaderboard site"):
        write_site(table, foreign, lb)
    assert (foreign / "keep.txt").read_text() == "mine"


# -- the page in a real browser ------------------------------------------------------------------------------------
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[dev]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("no headless Chromium here (apt-get install chromium chromium-driver; .ci/run does it as root)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600", "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_page_in_headless_chromium(board, with_references, tmp_path):
    from selenium.webdriver.common.by import By

    lb, table = board
    site = write_site(table, tmp_path / "site", lb, reported=load_reported(REPO_LEADERBOARD))
    wide_lb, _, refs, fused = with_references
    wide = write_site(refs, tmp_path / "wide", wide_lb, root="sample", fused=fused)
    driver = _browser()
    try:
        def severe():
            return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]

        def methods(table="table.main"):
            return [a.text for a in driver.find_elements(By.CSS_SELECTOR,
                                                         f"{table} tbody:first-of-type tr td:nth-child(2) a")]

        def loaded_images():
            return driver.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth)")

        driver.get((site / "index.html").as_uri())
        assert driver.title == "m3svd leaderboard"
        assert severe() == []
        assert methods() == _order(table)  # every submitted method, best score first
        headers = {th.text: th for th in driver.find_elements(By.CSS_SELECTOR, "table.main thead th[data-col]")}
        assert list(headers) == ["#", "method", "score ↓", "en ↑", "sd ↑", "nabf ↓"]
        headers["method"].click()
        assert methods() == sorted(NAMES.values())
        headers["method"].click()
        assert methods() == sorted(NAMES.values(), reverse=True)
        headers["sd ↑"].find_element(By.CLASS_NAME, "dir").click()  # a higher-is-better column sorts best first
        overall = table[(table["clip"] == OVERALL) & (table["metric"] == "sd")]
        assert methods() == list(overall.sort_values("value", ascending=False)["label"])
        assert headers["sd ↑"].get_attribute("aria-sort") == "descending"
        assert len(loaded_images()) == 4 and all(loaded_images())  # rank stability, 3 per-frame curves
        headers["en ↑"].find_element(By.LINK_TEXT, "en").click()  # the metric's name opens its card
        assert driver.title == "metric card: en" and "Entropy" in driver.find_element(By.CSS_SELECTOR, "pre").text
        driver.back()
        driver.find_element(By.LINK_TEXT, "Alpha").click()
        provenance = driver.find_element(By.ID, "provenance").text
        record = table[table["method"] == "Alpha"]["submission"].iloc[0]
        assert record in provenance and "https://example.org/paper" in provenance and "short-sample@1" in provenance
        assert len(driver.find_elements(By.CSS_SELECTOR, "#clips tbody tr")) == 1
        assert severe() == []
        driver.get((site / "reported.html").as_uri())
        assert driver.find_element(By.ID, "reported-label").text == REPORTED_LABEL
        assert len(driver.find_elements(By.CSS_SELECTOR, "section.reported table")) == len(
            reported_groups(load_reported(REPO_LEADERBOARD)))
        assert severe() == []

        # 13 metrics, a long name, reference rows and every figure, at 1280 px
        driver.get((wide / "index.html").as_uri())
        assert severe() == []
        assert [th.text for th in driver.find_elements(By.CSS_SELECTOR, "table.main thead th[data-col]")] == [
            "#", "method", "score ↓", "mi ↑", "qabf ↑", "ssim ↑", "tgf ↓"]
        references = driver.find_elements(By.CSS_SELECTOR, "table.main tbody.references tr.reference")
        assert [r.text.split()[:2] for r in references] == [["ref", "Average"], ["ref", "IR"]]
        driver.find_element(By.CSS_SELECTOR, "details.others summary").click()
        others = driver.find_element(By.CSS_SELECTOR, "table.others")
        assert others.is_displayed() and len(others.find_elements(By.CSS_SELECTOR, "thead th[data-col]")) == 2 + 9
        page = driver.execute_script("return [document.documentElement.scrollWidth, "
                                     "document.documentElement.clientWidth]")
        assert page[0] <= page[1] <= 1280, page  # no horizontal overflow of the page
        box = driver.execute_script("var s = document.querySelector('details.others .scroll'); "
                                    "return [s.scrollWidth, s.clientWidth]")
        assert box[0] > box[1], box  # the wide section scrolls inside its own container
        cells = driver.find_elements(By.CSS_SELECTOR, "table.main tbody:first-of-type td small.ci")
        assert len(cells) == 2 * 4 and all(c.text.startswith("[") for c in cells)  # intervals shown
        images = driver.find_elements(By.CSS_SELECTOR, "figure img")
        assert [i.get_attribute("src").rsplit("/", 1)[1] for i in images] == [
            "strip.png", "rank-stability.png", "frames-mi.png", "frames-qabf.png", "frames-ssim.png", "frames-tgf.png"]
        assert all(loaded_images()) and len(loaded_images()) == 6  # every figure loads (naturalWidth > 0)
        assert driver.execute_script("return Math.max(...Array.from(document.images).map(i => "
                                     "i.getBoundingClientRect().right))") <= page[1]
        shot = os.environ.get("M3SVD_PAGE_SHOT")
        if shot:  # the screenshot a reviewer looks at
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1280, height + 140)
            driver.save_screenshot(shot)
    finally:
        driver.quit()
