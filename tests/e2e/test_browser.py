"""A person's path through the real page in headless Chromium: upload a photo, see the results grid."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from tests import environment
from tests.conftest import write_query_split

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def test_upload_a_photo_and_see_ranked_results(
    tmp_path: Path, live_server, celery_worker_process: object, empty_vector_store: None
) -> None:
    from playwright.sync_api import expect, sync_playwright

    queries = write_query_split(tmp_path, n_landmarks=3, views=4, seed=5)
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "300", verbosity=0)
    landmark, query = next(iter(queries.items()))

    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh temporary profile of its own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(live_server.url + "/")
            page.set_input_files("#photo-input", str(query))
            results = page.locator("#results .result")
            expect(results).to_have_count(9, timeout=30_000)  # 3 landmarks x 3 indexed views
            expect(results.first.locator(".landmark")).to_have_text(landmark)
            expect(page.locator("#search-status")).to_contain_text("Top 9")
            expect(page.locator("#prediction")).to_contain_text(f"This is {landmark}")
            assert results.first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
            # A filter (done in Milvus) searches the same photo again: only that landmark's images remain.
            other = next(name for name in queries if name != landmark)
            page.select_option("#filter-landmark", label=other)
            expect(results).to_have_count(3, timeout=30_000)
            expect(results.locator(".landmark")).to_have_text([other] * 3)
            page.select_option("#filter-landmark", value="")
            expect(results).to_have_count(9, timeout=30_000)
            page.screenshot(path=str(environment.RUN_DIR / "search.png"), full_page=True)
            results.first.click()
            expect(page.locator("h1")).to_have_text(landmark)
        finally:
            browser.close()


def test_a_collection_without_names_says_where_the_photo_was_taken(
    tmp_path: Path, live_server, celery_worker_process: object, empty_vector_store: None
) -> None:
    """GPS in labels.csv, no landmark names: an exact copy of a collection photo is found (verified), never
    "not in the collection", and its place is on the map with its radius and a scale bar."""
    from playwright.sync_api import expect, sync_playwright

    write_query_split(tmp_path, n_landmarks=3, views=4, seed=7)
    collection = tmp_path / "collection"
    places = {f"landmark_{i:03d}": (17.4460 + 0.003 * i, 78.3490) for i in range(3)}  # ~330 m apart
    rows = [
        f"{path.relative_to(collection).as_posix()},,{places[path.parent.name][0]},{places[path.parent.name][1]}"
        for path in sorted(collection.glob("*/*.jpg"))
    ]
    (collection / "labels.csv").write_text("image,landmark,latitude,longitude\n" + "\n".join(rows) + "\n")
    call_command("import_images", str(collection), "--timeout", "300", verbosity=0)
    copy = sorted((collection / "landmark_001").glob("*.jpg"))[0]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(live_server.url + "/")
            page.set_input_files("#photo-input", str(copy))
            expect(page.locator("#results .result")).to_have_count(9, timeout=30_000)
            answer = page.locator("#prediction")
            expect(answer).to_contain_text("Found in the collection")
            expect(answer).to_contain_text("verified match")
            expect(answer).not_to_contain_text("Not in the collection")
            expect(page.locator("#location")).to_contain_text("Taken near 17.449")
            expect(page.locator("#location")).to_contain_text("verified")
            circle = page.locator("#results-map .map-location")
            expect(circle).to_have_count(1)
            assert float(circle.get_attribute("r") or 0) >= 3
            expect(page.locator("#results-map .map-scale text")).to_have_text(re.compile(r"^\d+ (m|km)$"))
            page.screenshot(path=str(environment.RUN_DIR / "search-location.png"), full_page=True)
        finally:
            browser.close()
