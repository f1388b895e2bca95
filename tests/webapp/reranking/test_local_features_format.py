"""LOCAL_FEATURES_FORMAT reaches the served SIFT store: a folder per format, a clear error when misspelt."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from retrieval_core.features.compact import LocalFeatureFormat
from webapp.reranking.local_features import local_format, sift_store


def test_format_setting_names_the_store_and_its_encoding(settings) -> None:
    settings.LOCAL_FEATURES_FORMAT = "full"
    full = sift_store()
    settings.LOCAL_FEATURES_FORMAT = "2bit-uint16-k750"
    compact = sift_store()
    assert compact.format == LocalFeatureFormat(2, "uint16", 750) == local_format()
    assert compact.extractor_key != full.extractor_key  # compact features never mix with full ones
    assert compact.extractor_key.endswith("-2bit-uint16-k750")


def test_misspelt_format_is_a_configuration_error(settings) -> None:
    settings.LOCAL_FEATURES_FORMAT = "2bits"
    with pytest.raises(ImproperlyConfigured, match="LOCAL_FEATURES_FORMAT"):
        sift_store()
