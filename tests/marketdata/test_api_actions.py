"""Corporate actions in the API (marketdata/api_actions.py): listed and filtered, read as known
at a moment; stated one or a batch at a time by a user holding add_corporateaction, never by
another user nor an auditor; a bad item a 400 naming its index and field with nothing
written; withdrawn. Then the database's rules in raw SQL: the application's role writes the
table only through the owner's functions, and nobody, the owner included, edits or deletes an
action.
"""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg import errors
from rest_framework.test import APIClient

from marketdata import security_master
from marketdata.models import CorporateAction, Instrument
from qvp_site.models import AuditEntry
from tests.clients import client_of

URL = "/api/v1/corporate-actions/"
WITHDRAW = f"{URL}withdraw/"


def user(name: str, *groups: str, writer: bool = False):
    made = get_user_model().objects.create_user(name, password=f"pw-{name}-1234")
    made.groups.add(*(Group.objects.get_or_create(name=g)[0] for g in groups))
    if writer:
        made.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="marketdata", codename="add_corporateaction"
            )
        )
    return get_user_model().objects.get(pk=made.pk)  # no cached permissions


@pytest.fixture
def writer(db):
    return client_of(user("wanda", writer=True))


@pytest.fixture
def reader(db):
    return client_of(user("rita"))


@pytest.fixture
def oracle(db) -> Instrument:
    return Instrument.objects.create(symbol="ORCL", asset_class="equity", exchange="XNAS")


@pytest.fixture
def spun(db) -> Instrument:
    return Instrument.objects.create(symbol="SPUN", asset_class="equity", exchange="XNAS")


SPLIT = {"symbol": "ORCL", "kind": "split", "ex_date": "2000-01-19", "ratio": "2:1"}
DIVIDEND = {
    "symbol": "ORCL",
    "kind": "cash_dividend",
    "ex_date": "2009-04-07",
    "amount": "0.05",
    "currency": "USD",
    "pay_date": "2009-05-01",
}
SPIN_OFF = {
    "symbol": "ORCL",
    "kind": "spin_off",
    "ex_date": "2011-06-01",
    "ratio": 0.5,
    "new_symbol": "SPUN",
    "cost_fraction": 0.1,
}


def current() -> list[tuple]:
    return list(
        CorporateAction.objects.order_by("id").values_list("id", "kind", "ex_date", "known_until")
    )


# --- Writing ---------------------------------------------------------------------------------
def test_one_action_is_stated_and_answered(writer, oracle):
    response = writer.post(URL, SPLIT, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["outcome"] == "inserted"
    assert (body["instrument"], body["symbol"], body["kind"], body["ex_date"]) == (
        oracle.pk,
        "ORCL",
        "split",
        "2000-01-19",
    )
    assert float(body["ratio"]) == 2
    assert body["known_until"] is None
    stated = CorporateAction.objects.get()
    assert stated.pk == body["id"]
    again = writer.post(URL, SPLIT, format="json")
    assert again.status_code == 200
    assert again.json()["outcome"] == "unchanged"
    assert CorporateAction.objects.count() == 1


def test_a_batch_is_stated_whole_each_with_its_outcome(writer, oracle, spun):
    writer.post(URL, SPLIT, format="json")
    response = writer.post(URL, [{**SPLIT, "ratio": "3-for-2"}, DIVIDEND, SPIN_OFF], format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert [(a["kind"], a["outcome"]) for a in body] == [
        ("split", "restated"),
        ("cash_dividend", "inserted"),
        ("spin_off", "inserted"),
    ]
    assert (body[2]["new_instrument"], body[2]["new_symbol"]) == (spun.pk, "SPUN")
    splits = CorporateAction.objects.filter(kind="split").order_by("id")
    assert [float(s.ratio) for s in splits] == [2, 1.5]
    assert splits[0].known_until is not None  # the version replaced, kept


def test_a_symbol_names_the_instrument_it_bore_on_the_ex_date(writer, db):
    meta = Instrument.objects.create(symbol="FB", asset_class="equity")
    security_master.set_terms(
        meta.pk, date(2022, 6, 9), None, security_master.Terms(symbol="META", currency="USD")
    )
    response = writer.post(
        URL, {**DIVIDEND, "symbol": "FB", "ex_date": "2021-03-01", "pay_date": None}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["instrument"] == meta.pk
    assert response.json()["symbol"] == "META"  # its symbol now


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"kind": "merger"}, "kind", "not a valid choice"),
        ({"ex_date": "2000-02-30"}, "ex_date", "Date has wrong format"),
        ({"ratio": "1"}, "ratio", "a split of 1 for 1 changes nothing"),
        ({"ratio": "-2"}, "ratio", "is not positive"),
        ({"ratio": "3:0"}, "ratio", "not a ratio"),
        ({"ratio": None}, "ratio", "a split states its ratio"),
        ({"amount": "0.5"}, "amount", "a split has no amount"),
        ({"symbol": "NOPE"}, "symbol", "unknown symbol NOPE on 2000-01-19"),
        ({"instrument": 999999, "symbol": None}, "instrument", "no instrument 999999"),
        ({"final_price": "NaN"}, "final_price", "valid number"),
        ({"ratio": True}, "ratio", "Not a valid string"),
    ],
)
def test_a_bad_action_is_a_400_naming_its_field(writer, oracle, change, field, words):
    body = {k: v for k, v in {**SPLIT, **change}.items() if v is not None or k == "ratio"}
    response = writer.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert words in str(response.json()[field]), response.json()
    assert not CorporateAction.objects.exists()


def test_a_bad_item_refuses_the_batch_naming_its_index_and_field(writer, oracle, spun):
    batch = [SPLIT, {**DIVIDEND, "currency": "EUR"}, SPIN_OFF, {**SPLIT, "ratio": "1.5"}]
    response = writer.post(URL, batch, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"1", "0", "3"}
    assert "EUR, but instrument" in body["1"]["currency"][0]
    assert "trades in USD" in body["1"]["currency"][0]
    assert "a second split of ORCL" in body["0"]["ex_date"][0]
    assert "a second split of ORCL" in body["3"]["ex_date"][0]
    assert not CorporateAction.objects.exists()
    typed = writer.post(URL, [SPLIT, {**DIVIDEND, "amount": "x"}], format="json")
    assert typed.status_code == 400
    assert set(typed.json()) == {"1"}
    assert "amount" in typed.json()["1"]


def test_a_body_that_is_no_action_is_a_400(writer, db):
    assert writer.post(URL, [], format="json").status_code == 400
    assert writer.post(URL, "split", format="json").status_code == 400


def test_the_audit_log_names_the_user(writer, oracle):
    response = writer.post(URL, SPLIT, format="json")
    entry = AuditEntry.objects.get(table_name="marketdata_corporateaction")
    assert (entry.row_key, entry.operation, entry.actor) == (
        str(response.json()["id"]),
        "INSERT",
        "wanda",
    )


def test_the_application_role_states_actions(writer, oracle, as_app_role):
    response = writer.post(URL, SPLIT, format="json")
    assert response.status_code == 201, response.content


# --- Withdrawing -----------------------------------------------------------------------------
def test_an_action_is_withdrawn_and_stays_readable_by_id(writer, oracle):
    stated = writer.post(URL, SPLIT, format="json").json()
    body = {"symbol": "ORCL", "kind": "split", "ex_date": "2000-01-19"}
    response = writer.post(WITHDRAW, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == stated["id"]
    assert response.json()["known_until"] is not None
    assert writer.get(URL).json()["results"] == []
    assert writer.get(f"{URL}{stated['id']}/").json()["known_until"] is not None
    again = writer.post(WITHDRAW, body, format="json")
    assert again.status_code == 404
    assert "no current split of ORCL" in again.json()["detail"]
    by_id = {"instrument": oracle.pk, "kind": "split", "ex_date": "2000-01-19"}
    assert writer.post(WITHDRAW, by_id, format="json").status_code == 404


def test_a_bad_withdrawal_is_a_400(writer, oracle):
    for body, field in [
        ({"kind": "split", "ex_date": "2000-01-19"}, "symbol"),
        ({"symbol": "NOPE", "kind": "split", "ex_date": "2000-01-19"}, "symbol"),
        ({"instrument": 999999, "kind": "split", "ex_date": "2000-01-19"}, "instrument"),
        ({"symbol": "ORCL", "kind": "split"}, "ex_date"),
    ]:
        response = writer.post(WITHDRAW, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()


# --- Reading ---------------------------------------------------------------------------------
@pytest.fixture
def stated(writer, oracle, spun) -> list[dict]:
    response = writer.post(URL, [SPLIT, DIVIDEND, SPIN_OFF], format="json")
    assert response.status_code == 201, response.content
    return response.json()


def listed(client, **query) -> list[tuple]:
    response = client.get(URL, query)
    assert response.status_code == 200, response.content
    return [(a["kind"], a["ex_date"]) for a in response.json()["results"]]


def test_actions_are_listed_by_ex_date_and_filtered(reader, stated, oracle, spun):
    assert listed(reader) == [
        ("split", "2000-01-19"),
        ("cash_dividend", "2009-04-07"),
        ("spin_off", "2011-06-01"),
    ]
    assert listed(reader, kind="cash_dividend") == [("cash_dividend", "2009-04-07")]
    assert listed(reader, start="2009-04-07", end="2011-06-01") == [("cash_dividend", "2009-04-07")]
    assert listed(reader, instrument=spun.pk) == []
    assert len(listed(reader, symbol="ORCL")) == 3
    assert listed(reader, symbol="ORCL", start="2010-01-01") == [("spin_off", "2011-06-01")]
    page = reader.get(URL, {"page_size": 2}).json()
    assert (page["count"], len(page["results"])) == (3, 2)
    assert [a["kind"] for a in reader.get(page["next"]).json()["results"]] == ["spin_off"]
    one = reader.get(f"{URL}{stated[1]['id']}/")
    assert one.status_code == 200
    assert one.json()["amount"] is not None


def test_bad_filters_are_a_400_naming_them(reader, stated):
    for query, field in [
        ({"symbol": "NOPE"}, "symbol"),
        ({"kind": "merger"}, "kind"),
        ({"start": "2001-02-30"}, "start"),
        ({"start": "2001-01-02", "end": "2001-01-02"}, "end"),
        ({"known_at": "yesterday"}, "known_at"),
        ({"instrument": "x"}, "instrument"),
    ]:
        response = reader.get(URL, query)
        assert response.status_code == 400, (query, response.content)
        assert field in response.json()


@pytest.mark.django_db(transaction=True)
def test_the_list_as_known_at_a_moment():
    oracle = Instrument.objects.create(symbol="ORCL", asset_class="equity")
    client = client_of(user("wanda", writer=True))
    assert client.post(URL, SPLIT, format="json").status_code == 201
    between = timezone.now()
    assert client.post(URL, {**SPLIT, "ratio": "3:2"}, format="json").status_code == 201
    then = client.get(URL, {"known_at": between.isoformat()}).json()["results"]
    assert [(a["instrument"], float(a["ratio"])) for a in then] == [(oracle.pk, 2.0)]
    assert then[0]["known_until"] is not None  # closed since
    now = client.get(URL).json()["results"]
    assert [float(a["ratio"]) for a in now] == [1.5]
    before = client.get(URL, {"known_at": "2000-01-01T00:00:00Z"}).json()["results"]
    assert before == []


# --- Who may ---------------------------------------------------------------------------------
def test_anonymous_users_read_and_write_nothing(oracle):
    client = APIClient()
    assert client.get(URL).status_code in (401, 403)
    assert client.post(URL, SPLIT, format="json").status_code in (401, 403)
    assert not CorporateAction.objects.exists()


@pytest.mark.parametrize(
    ("groups", "writes", "rule"),
    [((), False, "model_permission"), (("auditors",), True, "auditors_read_only")],
    ids=["no permission", "auditor holding it"],
)
def test_others_read_and_are_refused_writes(writer, oracle, groups, writes, rule):
    writer.post(URL, SPLIT, format="json")
    before = current()
    client = client_of(user("eve", *groups, writer=writes))
    assert client.get(URL).status_code == 200
    for url, body in [(URL, DIVIDEND), (WITHDRAW, {**SPLIT, "ratio": None})]:
        response = client.post(url, body, format="json")
        assert response.status_code == 403, response.content
        assert response.json()["rule"] == rule
    assert current() == before


# --- The database's rules, in raw SQL --------------------------------------------------------
def test_the_application_role_writes_actions_only_through_the_functions(oracle, as_app_role):
    set_sql = (
        "SELECT marketdata_action_set(%s, 'split', '2000-01-19', 2, NULL, '', NULL, NULL,"
        " NULL, NULL)"
    )
    with connection.cursor() as cursor:
        cursor.execute(set_sql, [oracle.pk])
        assert cursor.fetchone() == ("inserted",)
        (action_id,) = CorporateAction.objects.values_list("id", flat=True)
        attempts = [
            (
                "INSERT INTO marketdata_corporateaction (instrument_id, kind, ex_date, ratio,"
                " currency) VALUES (%s, 'split', '2001-01-02', 2, '')",
                [oracle.pk],
            ),
            ("UPDATE marketdata_corporateaction SET ratio = 3 WHERE id = %s", [action_id]),
            (
                "UPDATE marketdata_corporateaction SET known_until = now() WHERE id = %s",
                [action_id],
            ),
            ("DELETE FROM marketdata_corporateaction WHERE id = %s", [action_id]),
        ]
        for statement, params in attempts:
            with pytest.raises(DatabaseError) as raised, transaction.atomic():
                cursor.execute(statement, params)
            assert isinstance(raised.value.__cause__, errors.InsufficientPrivilege), statement
        cursor.execute("SELECT marketdata_action_withdraw(%s, 'split', '2000-01-19')", [oracle.pk])
        assert cursor.fetchone() == (True,)
    assert CorporateAction.objects.get().known_until is not None


def test_the_owner_neither_edits_nor_deletes_an_action(oracle):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'split', '2000-01-19', 2, NULL, '', NULL, NULL,"
            " NULL, NULL)",
            [oracle.pk],
        )
    action = CorporateAction.objects.get()
    for statement in (
        "UPDATE marketdata_corporateaction SET ratio = 3 WHERE id = %s",
        "DELETE FROM marketdata_corporateaction WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="never"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [action.pk])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE marketdata_corporateaction SET known_until = now() WHERE id = %s", [action.pk]
        )
    with (
        pytest.raises(DatabaseError, match="never edited"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE marketdata_corporateaction SET known_until = NULL WHERE id = %s", [action.pk]
        )
    action.refresh_from_db()
    assert action.ratio == 2


# --- The admin -------------------------------------------------------------------------------
def test_the_admin_lists_and_shows_actions_and_changes_none(admin_client, writer, oracle):
    stated = writer.post(URL, SPLIT, format="json").json()
    writer.post(URL, {**SPLIT, "ratio": "3:2"}, format="json")  # the first kept, closed
    changelist = "/admin/marketdata/corporateaction/"
    listed = admin_client.get(changelist, {"q": "ORCL", "kind__exact": "split"})
    assert listed.status_code == 200
    for action in CorporateAction.objects.all():  # the current version and the closed one
        assert f"{changelist}{action.pk}/change/".encode() in listed.content
    page = admin_client.get(f"{changelist}{stated['id']}/change/")
    assert page.status_code == 200
    assert b"Save" not in page.content  # viewed only, even by a superuser
    assert (
        admin_client.post(f"{changelist}{stated['id']}/delete/", {"post": "yes"}).status_code == 403
    )
    assert admin_client.get(f"{changelist}add/").status_code == 403
    assert CorporateAction.objects.count() == 2
