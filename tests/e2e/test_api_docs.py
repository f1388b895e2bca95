"""The API's docs page in headless Chromium: /api/docs/ renders every operation of the generated document,
with only this site's own files (Swagger UI is served from django-ninja's bundled static files)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_browser import CHROMIUM, CHROMIUM_FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def test_the_docs_page_shows_every_operation_of_the_generated_document(live_server) -> None:
    import requests
    from playwright.sync_api import Route, expect, sync_playwright

    document = requests.get(live_server.url + "/api/schema/", timeout=30).json()
    operations = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
    assert len(operations) >= 9
    own = urlsplit(live_server.url).netloc
    elsewhere: list[str] = []

    def offline(route: Route) -> None:  # the page must not need the internet: refuse and remember
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            page.goto(live_server.url + "/api/docs/")
            expect(page.locator(".info .title")).to_contain_text("Landmark photo search")
            blocks = page.locator(".opblock")
            expect(blocks).to_have_count(len(operations), timeout=30_000)
            for method, path in operations:
                block = page.locator(f".opblock-{method.lower()}", has=page.locator(f'[data-path="{path}"]'))
                expect(block).to_have_count(1)
                expect(block.locator(".opblock-summary-method")).to_have_text(method)
            # An operation opens to its parameters and responses, as the document declares them.
            search = page.locator(".opblock-post", has=page.locator('[data-path="/api/search/"]'))
            search.locator(".opblock-summary").click()
            expect(search.locator(".responses-table")).to_contain_text("413")
            expect(search.locator(".opblock-body")).to_contain_text("image")
        finally:
            browser.close()
    assert elsewhere == [], f"the docs page asked for files elsewhere: {elsewhere}"
