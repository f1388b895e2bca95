"""Fixtures of the curation tests: users with and without the right to curate, and registered photos."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.conftest import encode_jpeg
from webapp.catalog.models import Image, Landmark
from webapp.catalog.services import register_image


@pytest.fixture
def curator(db: None) -> User:
    """Staff with permission to change images: may curate (not a superuser, so the rule is really tested)."""
    user = User.objects.create_user("curator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_image"))
    return user


@pytest.fixture
def curator_client(curator: User) -> Client:
    client = Client()
    client.force_login(curator)
    return client


@pytest.fixture
def visitor_client(db: None) -> Client:
    """Logged in, but not staff."""
    client = Client()
    client.force_login(User.objects.create_user("visitor", password="pw"))
    return client


@pytest.fixture
def photo() -> Callable[..., bytes]:
    """``photo(seed)``: a distinct JPEG view of a generated scene."""

    def make(seed: int, size: tuple[int, int] = (240, 320)) -> bytes:
        view, _ = render_view(make_scene(seed, size), np.random.default_rng(seed), out_size=size)
        return encode_jpeg(view)

    return make


@pytest.fixture
def landmarks(db: None) -> dict[str, Landmark]:
    return {name: Landmark.objects.create(name=name) for name in ("Alpha", "Beta", "Gamma")}


@pytest.fixture
def images(landmarks: dict[str, Landmark], photo: Callable[..., bytes]) -> list[Image]:
    """Two photos of Alpha and one of Beta, registered but not indexed (no worker in these tests)."""
    specs = [("a/1.jpg", "Alpha"), ("a/2.jpg", "Alpha"), ("b/1.jpg", "Beta")]
    return [
        register_image(
            photo(seed),
            original_name=source,
            source=source,
            landmark=landmarks[name],
            split="train",
            schedule=False,
        ).image
        for seed, (source, name) in enumerate(specs)
    ]
