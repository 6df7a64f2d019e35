"""The API's surface: no mass assignment, bounded pages.

Every model serializer names its fields (never ``__all__`` or ``exclude``, which would open a
column added later to writes), and every list is paginated with a maximum page size.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework import serializers

from qvp_site.api_urls import router


def _viewsets():
    return [(prefix, viewset) for prefix, viewset, _ in router.registry]


def _serializer_classes(viewset) -> set[type]:
    found = {viewset.serializer_class} if getattr(viewset, "serializer_class", None) else set()
    for name in dir(viewset):
        action = getattr(viewset, name, None)
        kwargs = getattr(action, "kwargs", None)
        if isinstance(kwargs, dict) and kwargs.get("serializer_class"):
            found.add(kwargs["serializer_class"])
    return found


@pytest.mark.parametrize(("prefix", "viewset"), _viewsets(), ids=lambda v: str(v))
def test_model_serializers_name_their_fields(prefix, viewset):
    for serializer in _serializer_classes(viewset):
        if not issubclass(serializer, serializers.ModelSerializer):
            continue
        meta = serializer.Meta
        assert not hasattr(meta, "exclude"), f"{serializer.__name__} uses exclude"
        assert isinstance(meta.fields, list | tuple), f"{serializer.__name__}: fields __all__"


@pytest.mark.parametrize(("prefix", "viewset"), _viewsets(), ids=lambda v: str(v))
def test_lists_are_paginated_with_a_maximum(prefix, viewset):
    if not hasattr(viewset, "list") or not hasattr(viewset, "pagination_class"):
        return  # computed on demand (VaR), not a list of rows
    paginator = viewset.pagination_class
    assert paginator is not None, f"{prefix}: no paginator"
    maximum = getattr(paginator, "max_page_size", None)
    if getattr(paginator, "page_size_query_param", None):
        assert maximum is not None, f"{prefix}: ?page_size= without a maximum"
        assert maximum <= settings.API_MAX_PAGE_SIZE, prefix
