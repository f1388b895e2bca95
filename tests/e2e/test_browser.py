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
    "not in the collection", and its place is on the map with its radius and a scale bar, over the
    collection's own positions (faint dots, their dashed area) as context; at phone width too."""
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
            # Context from the collection itself: a dot per place its 9 indexed photos were taken (3), under
            # the estimate, and the dashed area they cover, from north to south of the three places.
            context = page.locator("#results-map .map-context")
            expect(context.locator("circle")).to_have_count(3)
            expect(page.locator("#results-map .map-legend")).to_contain_text("the collection's 9 photos")
            dots = sorted(context.locator("circle").evaluate_all(
                "cs => cs.map((c) => +c.getAttribute('cy'))"
            ))
            area = context.locator(".map-collection-area")
            top, tall = (float(area.get_attribute(name) or "nan") for name in ("y", "height"))
            assert abs(top - dots[0]) < 0.2 and abs(top + tall - dots[-1]) < 0.2, (top, tall, dots)
            order = page.locator("#results-map svg > *").evaluate_all(
                "nodes => nodes.map((n) => n.getAttribute('class'))"
            )
            assert order.index("map-context") < order.index("map-location"), order
            page.screenshot(path=str(environment.RUN_DIR / "search-location.png"), full_page=True)

            page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
            box = page.locator("#results-map svg").bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE_WIDTH, box
            _no_sideways_scroll(page, "the results page with its map")
            page.screenshot(path=str(environment.RUN_DIR / "search-location-375.png"), full_page=True)
        finally:
            browser.close()


PHONE_WIDTH = 375


def _no_sideways_scroll(page: object, where: str) -> None:
    """The page body fits the phone's width: nothing scrolls sideways but a table's own box."""
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= PHONE_WIDTH, f"{where} is {width} px wide at {PHONE_WIDTH} px"


def test_drop_two_photos_then_search_and_read_the_jobs_page_at_phone_width(
    tmp_path: Path, live_server, celery_worker_process: object, empty_vector_store: None
) -> None:
    """A staff member who may add photos drops two on the collection page (one progress bar and answer per
    file), one of them an iPhone's HEIC, searches with the HEIC once both are indexed and finds it first,
    opens its match drawing and the Jobs page: all at 375 px wide without the page scrolling sideways."""
    import base64
    import time

    import numpy as np
    from django.contrib.auth.models import Permission, User
    from django.urls import reverse
    from playwright.sync_api import expect, sync_playwright

    from retrieval_core.datasets.synthetic import make_scene, render_view
    from tests.conftest import encode_jpeg
    from tests.phone_photos import encode_phone_photo

    user = User.objects.create_user("operator", password="a-long-password", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_image", "add_landmark"]))
    views = {
        seed: render_view(make_scene(seed, (240, 320)), np.random.default_rng(seed), out_size=(240, 320))[0]
        for seed in (11, 12)
    }
    # An iPhone's HEIC beside a JPEG: both are uploaded, indexed and found alike.
    photos = {"scene-11.jpg": encode_jpeg(views[11]), "scene-12.heic": encode_phone_photo(views[12], "HEIF")}
    query = tmp_path / "IMG_0012.HEIC"  # the same photo again, as the phone has it
    query.write_bytes(photos["scene-12.heic"])

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": PHONE_WIDTH, "height": 800})
            page.goto(live_server.url + reverse("accounts:login") + "?next=/collection/")
            page.fill("input[name=username]", "operator")
            page.fill("input[name=password]", "a-long-password")
            page.locator("input[name=password]").press("Enter")
            expect(page.locator("#drop-zone")).to_be_visible()
            page.wait_for_load_state()  # the zone shows before its script (upload.js) has run
            # What a drop from the file manager delivers: a DataTransfer holding the files.
            page.evaluate(
                """(files) => {
                    const transfer = new DataTransfer();
                    for (const [name, data] of Object.entries(files)) {
                        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                        const type = name.endsWith(".heic") ? "image/heic" : "image/jpeg";
                        transfer.items.add(new File([bytes], name, { type }));
                    }
                    const zone = document.getElementById("drop-zone");
                    zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true }));
                    zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
                }""",
                {name: base64.b64encode(data).decode() for name, data in photos.items()},
            )
            items = page.locator("#upload-list .upload-item")
            expect(items).to_have_count(2)
            expect(items.locator(".upload-name")).to_have_text(sorted(photos))
            expect(items.locator(".upload-status")).to_have_text(["added, being indexed"] * 2, timeout=30_000)
            bars = items.locator("progress").evaluate_all("bars => bars.map((bar) => bar.value)")
            assert bars == [100, 100]
            expect(page.locator("#upload-summary")).to_have_text("2 of 2 photo(s) added.")
            _no_sideways_scroll(page, "the collection page")

            # The ORM cannot run inside Playwright's event loop: the progress endpoint the page polls says
            # when both photos are indexed and their re-ranking features stored.
            progress_url = live_server.url + reverse("api:collection-progress")
            deadline = time.monotonic() + 300
            while (progress := page.request.get(progress_url).json())["local_features"] < 2:
                assert progress["total"] == 2 and progress["failed"] == 0, progress
                assert time.monotonic() < deadline, progress
                time.sleep(1)
            assert progress["indexed"] == 2

            page.goto(live_server.url + "/")
            page.set_input_files("#photo-input", str(query))
            results = page.locator("#results .result")
            expect(results).to_have_count(2, timeout=30_000)  # the JPEG and the HEIC photo
            expect(page.locator("#prediction")).to_contain_text("verified match")
            expect(page.locator("#query-preview")).to_contain_text("IMG_0012.HEIC")  # no broken image
            _no_sideways_scroll(page, "the results page")
            results.first.click()
            expect(page.locator("body")).to_contain_text("scene-12.heic (HEIF")  # found: the uploaded HEIC
            drawing = page.locator("#match-drawing")
            expect(drawing).to_be_visible()
            page.wait_for_function("document.getElementById('match-drawing').complete")
            assert drawing.evaluate("img => img.naturalWidth > 0 && img.clientWidth <= window.innerWidth")
            _no_sideways_scroll(page, "the match drawing page")
            page.screenshot(path=str(environment.RUN_DIR / "match-375.png"), full_page=True)

            page.locator("nav a", has_text="Jobs").click()
            expect(page.locator("h1")).to_have_text("Jobs")
            expect(page.locator("#workers")).to_contain_text("online")
            expect(page.locator("#queues")).to_contain_text("cpu")
            _no_sideways_scroll(page, "the Jobs page")
        finally:
            browser.close()


def test_every_page_of_the_menu_fits_a_phone(
    live_server, live_services: object, empty_vector_store: None
) -> None:
    """A staff member opens each page of the menu (the Django admin aside) at 375 px wide: none scrolls
    sideways, and the menu wraps instead of running off the screen."""
    from django.contrib.auth.models import User
    from django.urls import reverse
    from playwright.sync_api import expect, sync_playwright

    User.objects.create_superuser("admin", "admin@example.com", "a-long-password")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": PHONE_WIDTH, "height": 800})
            page.goto(live_server.url + reverse("accounts:login"))
            _no_sideways_scroll(page, "the login page")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "a-long-password")
            page.locator("input[name=password]").press("Enter")
            expect(page.locator("nav a", has_text="Jobs")).to_be_visible()
            links = page.locator("header.top nav a").evaluate_all("links => links.map((a) => a.href)")
            pages = [link for link in links if "/admin/" not in link]
            assert len(pages) >= 8, pages
            for link in pages:
                page.goto(link)
                expect(page.locator("h1").first).to_be_visible()
                _no_sideways_scroll(page, link)
                nav_right = page.locator("header.top").evaluate(
                    "header => header.getBoundingClientRect().right"
                )
                assert nav_right <= PHONE_WIDTH, link
        finally:
            browser.close()
