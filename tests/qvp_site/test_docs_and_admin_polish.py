"""The API docs page within the content security policy, the admin's icon, its plural names."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from signals.models import AlternativeData

# What a policy of style-src 'self' (no 'unsafe-inline', no nonce) refuses in a page's HTML.
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
STATIC = "/" + settings.STATIC_URL.lstrip("/")


@pytest.fixture
def staff(admin_client):
    return admin_client


def test_the_docs_page_has_no_inline_style_the_policy_refuses(staff):
    response = staff.get("/api/docs/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    html = response.content.decode()
    assert not INLINE_STYLE.search(html), INLINE_STYLE.search(html).group()
    # Its page styles come from a file of this site's instead.
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    own = [s for s in sheets if s.startswith(STATIC + "qvp/")]
    assert own == [STATIC + "qvp/swagger.css"]
    found = finders.find("qvp/swagger.css")
    with open(found) as css:
        assert "box-sizing" in css.read()


def test_the_admin_links_the_site_s_icon(staff):
    html = staff.get("/" + settings.ADMIN_URL).content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    assert icon, "no icon linked"
    assert icon.group(1) == STATIC + "qvp/favicon.svg"
    assert finders.find("qvp/favicon.svg")  # served by the static files (browser test: 200)


def test_the_admin_says_alternative_data_not_datas(staff):
    assert AlternativeData._meta.verbose_name_plural == "alternative data"
    html = staff.get("/" + settings.ADMIN_URL).content.decode()
    assert "Alternative data<" in html
    assert "datas" not in html.lower()
