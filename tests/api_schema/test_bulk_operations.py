"""The bulk formats' own operations in the schema (``GET bars.arrow``): each is a route that
exists and answers its format only, with the rows of the list's ``?format=``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from drf_spectacular.generators import SchemaGenerator

from marketdata.models import Instrument, MinuteBar
from qvp_site.api.bulk.formats import FORMATS
from qvp_site.db.partitions import prepare_load
from tests.clients import client_of

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
SUFFIXED = sorted(
    (path, name) for path in SCHEMA["paths"] for name in FORMATS if path.endswith(f".{name}")
)
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def test_every_list_of_the_bulk_formats_has_its_operation_in_each_format():
    streamed = [
        path
        for path, item in SCHEMA["paths"].items()
        if FORMATS["arrow"].media_type
        in item.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        and not path.endswith(".arrow")
    ]
    assert len(streamed) >= 15  # bars, ticks, orders, ... audit (the data-access issue)
    for path in streamed:
        for name, fmt in FORMATS.items():
            operation = SCHEMA["paths"][f"{path.rstrip('/')}.{name}"]["get"]
            assert list(operation["responses"]["200"]["content"]) == [fmt.media_type]
            names = {p["name"]: p for p in operation["parameters"]}
            assert names["start"]["required"]
            assert names["end"]["required"]
            assert not {"format", "cursor", "page", "page_size"} & set(names)


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "name"), SUFFIXED)
def test_each_documented_suffix_is_a_route_that_reads_its_format(path, name, admin_user):
    """Without a range the read is refused naming it (400), not a 404: the route exists and
    streams; a suffix names the format as ?format= does."""
    response = client_of(admin_user).get(path.replace("{id}", "1"))
    assert response.status_code == 400, (path, response.status_code, response.content[:200])
    assert "start" in response.json()


@pytest.mark.django_db(transaction=True)
def test_a_suffix_reads_the_rows_of_the_format_parameter(django_user_model):
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    prepare_load("marketdata_minutebar", T0, T0 + timedelta(days=1))
    MinuteBar.objects.bulk_create(
        MinuteBar(
            instrument=aapl, ts=T0 + timedelta(minutes=i), open=1, high=2, low=1, close=1 + i / 30
        )
        for i in range(30)
    )
    quant = client_of(django_user_model.objects.create_user("quant"))
    query = {"symbol": "AAPL", "start": "2024-03-04T00:00:00Z", "end": "2024-03-05T00:00:00Z"}
    for name, fmt in FORMATS.items():
        suffixed = quant.get(f"/api/v1/bars.{name}", query)
        parameter = quant.get("/api/v1/bars/", {**query, "format": name})
        assert suffixed.status_code == parameter.status_code == 200
        assert suffixed["Content-Type"].split(";")[0] == fmt.media_type
        body = b"".join(suffixed.streaming_content)
        assert body == b"".join(parameter.streaming_content)
        assert len(body) > 200
