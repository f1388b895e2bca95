"""/api/docs/ is Swagger UI over the generated document, from files this site serves itself (no CDN), and
the document and its page are only read."""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client


def test_the_docs_page_uses_only_this_sites_static_files(client: Client) -> None:
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) >= 3, urls  # the stylesheet, the bundle and its start script at least
    for url in urls:
        assert url.startswith(settings.STATIC_URL), f"{url} is not one of this site's static files"
        assert finders.find(url.removeprefix(settings.STATIC_URL)), f"{url} is not shipped"
    assert "/api/schema/" in html  # the page loads the generated document


def test_the_document_and_its_page_refuse_writes(client: Client) -> None:
    for url in ("/api/schema/", "/api/docs/", "/api/"):
        assert client.post(url).status_code == 405
    document = client.get("/api/schema/").json()
    assert document["openapi"] == "3.1.0" and document["info"]["title"] == "Landmark photo search"
    assert document["components"]["securitySchemes"]["ApiToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Authorization: Token <token> (or Bearer <token>), issued on /accounts/tokens/",
    }
