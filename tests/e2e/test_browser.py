"""A person's path through the real page in headless Chromium: upload a photo, see the results grid."""

from __future__ import annotations

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
