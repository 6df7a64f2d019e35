"""The audit log in the API (``GET /api/v1/audit/``, qvp_site/api_audit.py): auditors and
superusers read it, nobody else, not even with the model's view permission; nobody writes it;
its filters narrow it, bad ones are a 400 naming the parameter; pages follow newest first in a
bounded number of queries; and the application's database role reads it as the site does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from qvp_site.acting import acting_as
from qvp_site.auditors import AUDITORS
from qvp_site.models import AuditEntry
from tests.clients import client_of
from tests.clients import user_in as _user
from trading.models import Account

URL = "/api/v1/audit/"
ACCOUNTS = "trading_account"
US = timedelta(microseconds=1)
# Each request of a logged-in user: its session and user, and its transaction (a savepoint in
# the test's, its release) which begins by naming who acts (tests/trading/api/test_lists.py).
REQUEST = 5


@pytest.fixture
def nobody(db):
    return _user("nobody")


@pytest.fixture
def viewer(db):
    """Staff holding the view permission of audit entries, in no auditors group."""
    user = _user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    return user


@pytest.fixture
def auditor(db):
    """An auditor whose other group grants every permission (which writes nothing here)."""
    user = _user("audrey", AUDITORS, "everything")
    Group.objects.get(name="everything").permissions.set(Permission.objects.all())
    return user


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root")


@pytest.fixture
def books(db):
    """Audited changes by two actors: alice opens alpha and renames it; bob opens beta and
    deletes it. Returns the entries of the accounts' table, oldest first."""
    alice, bob = _user("alice"), _user("bob")
    with acting_as("test", user=alice):
        alpha = Account.objects.create(name="alpha")
        alpha.name = "alpha-2"
        alpha.save()
    with acting_as("test", user=bob):
        beta = Account.objects.create(name="beta")
        beta.delete()
    return list(AuditEntry.objects.filter(table_name=ACCOUNTS).order_by("id"))


def ids(client: APIClient, query: str = "") -> list[int]:
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200, response.content
    return [entry["id"] for entry in response.json()["results"]]


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Who reads ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["auditor", "root"])
def test_auditors_and_superusers_read_the_log_newest_first(request, books, reader):
    client = client_of(request.getfixturevalue(reader))
    response = client.get(f"{URL}?table={ACCOUNTS}")
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [entry.id for entry in reversed(books)]
    insert = rows[-1]
    assert insert["operation"] == "INSERT"
    assert (insert["old_row"], insert["new_row"]["name"]) == (None, "alpha")
    assert set(insert) == {
        "id", "at", "table_name", "row_key", "operation", "actor", "db_role",
        "old_row", "new_row", "seq", "prev_hash", "hash",
    }  # fmt: skip
    one = client.get(f"{URL}{books[0].id}/")
    assert one.status_code == 200
    assert one.json()["row_key"] == books[0].row_key


@pytest.mark.parametrize("who", ["nobody", "viewer"])
def test_everyone_else_is_refused_even_with_the_view_permission(request, books, who):
    """The log holds every account's rows and has no row-level security: a view permission,
    which any group may carry, does not open it (qvp_site/api_audit.py)."""
    client = client_of(request.getfixturevalue(who))
    for url in (URL, f"{URL}?table={ACCOUNTS}", f"{URL}{books[0].id}/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json()["rule"] == "audit_readers"


def test_anonymous_requests_are_refused(books):
    response = APIClient().get(URL)
    assert response.status_code in (401, 403)
    assert "results" not in response.json()


@pytest.mark.parametrize("reader", ["auditor", "root"])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_nobody_writes_the_log(request, books, reader, method):
    client = client_of(request.getfixturevalue(reader))
    before = AuditEntry.objects.count()
    body = {"table_name": ACCOUNTS, "row_key": "1", "operation": "DELETE", "actor": "x"}
    for url in (URL, f"{URL}{books[0].id}/"):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 405, (url, response.content)
    assert AuditEntry.objects.count() == before
    assert AuditEntry.objects.get(pk=books[0].pk).actor == books[0].actor


def test_a_write_by_someone_who_may_not_read_is_refused_before_anything(books, nobody):
    response = client_of(nobody).post(URL, {"table_name": ACCOUNTS}, format="json")
    assert response.status_code == 403


# --- Filters -----------------------------------------------------------------------------------
def test_filters_narrow_the_log(books, auditor):
    client = client_of(auditor)
    insert, update, beta_insert, beta_delete = books
    everything = ids(client, f"table={ACCOUNTS}")
    assert len(everything) == 4
    assert ids(client, f"table={ACCOUNTS}&operation=UPDATE") == [update.id]
    assert ids(client, f"table={ACCOUNTS}&actor={beta_delete.actor}") == [
        beta_delete.id,
        beta_insert.id,
    ]
    assert beta_delete.actor != insert.actor  # the actors are the users who acted
    assert ids(client, f"table={ACCOUNTS}&row_key={insert.row_key}") == [update.id, insert.id]
    assert ids(client, "table=trading_order") == []
    # start inclusive, end exclusive, on the entry's time.
    window = f"table={ACCOUNTS}&start={iso(update.at)}&end={iso(beta_delete.at)}"
    assert ids(client, window) == [beta_insert.id, update.id]
    assert ids(client, f"table={ACCOUNTS}&start={iso(beta_delete.at + US)}") == []


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("operation=CHANGE", "operation"),
        ("start=soon", "start"),
        ("until=2024-13-01", "until"),
        ("start=2024-02-01&end=2024-01-01", "start"),
        ("row_key=1", "row_key"),  # a row key names a row only within its table
        ("table=" + "t" * 64, "table"),
        ("actor=" + "a" * 151, "actor"),
        ("table=trading_account&row_key=" + "9" * 101, "row_key"),
        ("actor=a%00b", "actor"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(books, auditor, query, parameter):
    response = client_of(auditor).get(f"{URL}?{query}")
    assert response.status_code == 400, response.content
    assert parameter in response.json()


# --- Pages -------------------------------------------------------------------------------------
def test_pages_follow_newest_first_and_back(books, auditor):
    client = client_of(auditor)
    expected = list(AuditEntry.objects.order_by("-at", "-id").values_list("id", flat=True))
    seen, pages = [], []
    url = f"{URL}?page_size=2"
    while url:
        page = client.get(url).json()
        pages.append(page)
        seen += [entry["id"] for entry in page["results"]]
        url = page["next"]
    assert seen == expected
    assert len(pages) >= 2
    back = client.get(pages[-1]["previous"]).json()
    assert back["results"] == pages[-2]["results"]


def test_a_cursor_no_page_wrote_is_a_404(books, auditor):
    response = client_of(auditor).get(f"{URL}?cursor=cD1ub3QtYS10aW1l")  # p=not-a-time
    assert response.status_code == 404


def test_a_page_takes_a_bounded_number_of_queries(auditor, django_assert_max_num_queries):
    """However many entries a page holds: the request's own, whether the user is an auditor,
    and the page (no count: a cursor page)."""
    with acting_as("test"):
        Account.objects.bulk_create(Account(name=f"desk-{n}") for n in range(40))
    client = client_of(auditor)
    with django_assert_max_num_queries(REQUEST + 2):
        response = client.get(f"{URL}?table={ACCOUNTS}&page_size=30")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 30


# --- The application's role --------------------------------------------------------------------
def test_the_application_role_reads_the_log_for_an_auditor(books, auditor, as_app_role):
    """As the served site runs: trading_app holds SELECT on the log (and nothing else)."""
    assert ids(client_of(auditor), f"table={ACCOUNTS}") == [e.id for e in reversed(books)]


# --- Schema ------------------------------------------------------------------------------------
def test_the_schema_documents_the_log_and_no_write():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in ("/api/v1/audit/", "/api/v1/audit/{id}/"):
        assert set(schema["paths"][path]) == {"get"}
        assert "403" in schema["paths"][path]["get"]["responses"]
    parameters = {p["name"] for p in schema["paths"]["/api/v1/audit/"]["get"]["parameters"]}
    assert {"start", "end", "table", "operation", "actor", "row_key", "cursor"} <= parameters


# --- In bulk formats -----------------------------------------------------------------------------
def _today() -> dict:
    from django.utils import timezone

    now = timezone.now()
    return {"start": iso(now - timedelta(days=1)), "end": iso(now + timedelta(days=1))}


@pytest.mark.django_db(transaction=True)
def test_auditors_read_the_log_in_bulk_as_in_pages(books, auditor):
    import json

    from tests.bulk import assert_same_rows, bulk_table, json_rows

    client = client_of(auditor)
    query = {"table": ACCOUNTS, **_today()}
    table = bulk_table(client, URL, query, "parquet")
    assert table.column("id").to_pylist() == [entry.id for entry in books]  # oldest first
    for column in ("old_row", "new_row"):  # JSON text in the bulk formats
        parsed = [json.loads(text) if text else None for text in table.column(column).to_pylist()]
        table = table.set_column(table.column_names.index(column), column, [parsed])
    assert_same_rows(table, json_rows(client, URL, query))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv"])
def test_nobody_else_reads_the_log_in_bulk(books, viewer, fmt):
    response = client_of(viewer).get(URL, {**_today(), "format": fmt})
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
