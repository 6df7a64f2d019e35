"""Admin for market data that stays fast on millions of rows: no full counts, raw id fields,
no date hierarchy, lists ordered by the key the tables are indexed on.

Bars, ticks and option quotes are viewed here, never added, changed or deleted: they come by
loads (``ingest_bars``, ``ingest_ticks``, ``POST /api/v1/bars/``), which record an Ingest, and
the application's database role may not UPDATE or DELETE them (marketdata/apps.py).

Their revisions (the rows a load replaced or ``delete_market_data`` removed, kept by the
owner's functions of marketdata/sql/revisions/0009.sql) are viewed only too: a row's change
page shows its own, an Ingest's change page links to the ones its load brought.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.contrib import admin
from django.db import models
from django.db.models import F
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from marketdata.models import (
    REVISIONS,
    CorporateAction,
    DailyBar,
    DailyBarRevision,
    Ingest,
    Instrument,
    Listing,
    MinuteBar,
    MinuteBarRevision,
    OptionQuote,
    OptionQuoteRevision,
    Revision,
    Tick,
    TickRevision,
)
from qvp_site.admin_access import BlankToFieldIsThePk
from qvp_site.admin_bases import (
    AuditorsReadOnly,
    CsvExport,
    LargeTableAdmin,
    NotCounted,
    ViewOnly,
)

# The revisions a load of each kind keeps (option quotes have no loads of their own yet).
INGEST_REVISIONS: dict[str, type[Revision]] = {
    Ingest.Kind.BARS_1M: MinuteBarRevision,
    Ingest.Kind.BARS_1D: DailyBarRevision,
    Ingest.Kind.TICKS: TickRevision,
}

# How many of a row's revisions its change page lists; the link beside lists them all.
SHOWN_REVISIONS = 20


def changelist_url(model: type[models.Model], **filters: object) -> str:
    """``model``'s admin list narrowed by ``filters`` (lookups the admin allows in its URL)."""
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _url_value(value: object) -> str:
    # ISO text for times and dates: str() of a datetime has a space the admin reads back too,
    # but isoformat() is the form the rest of the site writes.
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# The columns of a version in the instrument's history (its change page).
HISTORY_COLUMNS = (
    "valid_from",
    "valid_until",
    "symbol",
    "name",
    "mic",
    "currency",
    "status",
    "isin",
    "figi",
    "known_from",
    "known_until",
)


@admin.register(Instrument)
class InstrumentAdmin(CsvExport, AuditorsReadOnly, admin.ModelAdmin):
    list_display = ["symbol", "asset_class", "exchange", "currency", "tick_size", "active"]
    list_filter = ["asset_class", "active", "exchange", "currency"]
    search_fields = ["symbol"]
    readonly_fields = ["history"]

    @admin.display(description="security master history")
    def history(self, instrument: Instrument) -> SafeString | str:
        """Every version of the instrument's terms, current and closed (as known before a
        correction), in date order: one query by the listing table's instrument index. Not an
        inline: versions are written by the security master's functions, never by a form."""
        if instrument.pk is None:
            return "-"
        versions = list(
            Listing.objects.filter(instrument=instrument)
            .order_by(F("valid_from").asc(nulls_first=True), "known_from", "pk")
            .values_list(*HISTORY_COLUMNS)
        )
        link = format_html(
            '<a href="{}">these versions in the list of listings</a>',
            changelist_url(Listing, instrument__id__exact=instrument.pk),
        )
        header = format_html_join(
            "", "<th>{}</th>", ((c.replace("_", " "),) for c in HISTORY_COLUMNS)
        )
        body = format_html_join(
            "",
            '<tr class="{}">{}</tr>',
            (
                (
                    "closed" if values[-1] is not None else "current",
                    format_html_join("", "<td>{}</td>", ((_blank(v),) for v in values)),
                )
                for values in versions
            ),
        )
        return format_html(
            "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}", header, body, link
        )


def _blank(value: object) -> object:
    """An open bound or an empty field, as the admin shows one."""
    return "-" if value in (None, "") else value


@admin.register(Listing)
class ListingAdmin(ViewOnly, LargeTableAdmin):
    """The security master's versions: viewed only, written by its functions
    (``marketdata_listing_set`` through ``ingest_listings``, ``POST /api/v1/listings/``, an
    instrument changed here), which keep a version replaced closed (``known_until``)."""

    list_display = ["instrument", *HISTORY_COLUMNS]
    list_filter = [
        "status",
        ("valid_from", admin.DateFieldListFilter),
        ("known_until", admin.EmptyFieldListFilter),
    ]
    search_fields = ["symbol__exact", "isin__exact", "figi__exact", "instrument__symbol__exact"]
    # By the column, not the relation: ``instrument`` would order by the instrument's symbol.
    ordering = ["instrument_id", "valid_from", "known_from"]


@admin.register(CorporateAction)
class CorporateActionAdmin(ViewOnly, LargeTableAdmin):
    """Corporate actions, current and closed (a restatement or a withdrawal keeps the version
    it replaces, ``known_until``): viewed only, for everyone. They are written by the owner's
    ``marketdata_action_set`` and ``marketdata_action_withdraw`` through ``ingest_actions``
    and ``POST /api/v1/corporate-actions/``, which check and record them; the table refuses
    an edit or a deletion (``marketdata_action_kept``)."""

    list_display = [
        "instrument",
        "kind",
        "ex_date",
        "ratio",
        "amount",
        "currency",
        "pay_date",
        "new_instrument",
        "cost_fraction",
        "final_price",
        "known_from",
        "known_until",
    ]
    list_filter = [
        "kind",
        ("ex_date", admin.DateFieldListFilter),
        ("known_until", admin.EmptyFieldListFilter),
    ]
    search_fields = ["instrument__symbol__exact", "new_instrument__symbol__exact"]
    raw_id_fields = ["instrument", "new_instrument"]
    list_select_related = ["instrument", "new_instrument"]
    # Newest ex-dates first, by the table's ex-date index.
    ordering = ["-ex_date", "-id"]


class ShowsRevisions:
    """ModelAdmin mixin for a market-data row's change page: the revisions of the same key
    (instrument and time; the sequence of a tick, the contract of an option quote), newest
    first, as a small table read in one query by the revision table's (instrument, ts) index,
    and a link to all of them in the revisions' list. Not an inline: the revision rows join on
    several columns, an inline on one foreign key."""

    revision_key: ClassVar[tuple[str, ...]] = ("instrument", "ts")
    revision_values: ClassVar[tuple[str, ...]] = ("open", "high", "low", "close", "volume")
    readonly_fields: Sequence[str] = ["revisions"]

    def _revision_filters(self, row: models.Model) -> tuple[dict[str, object], dict[str, str]]:
        """The revisions of ``row``: as ORM filters, and as the admin list's URL lookups."""
        orm: dict[str, object] = {}
        url: dict[str, str] = {}
        for name in self.revision_key:
            field = row._meta.get_field(name)
            value = getattr(row, field.attname)
            orm[field.attname] = value
            lookup = f"{name}__id__exact" if field.is_relation else f"{name}__exact"
            url[lookup] = _url_value(value)
        return orm, url

    @admin.display(description="revisions")
    def revisions(self, row: models.Model) -> SafeString | str:
        if row.pk is None:
            return "-"
        revision_model = REVISIONS[type(row)]
        orm, url = self._revision_filters(row)
        columns = ["known_from", "known_until", "change", *self.revision_values]
        found = list(
            revision_model.objects.filter(**orm)
            .order_by("-known_until", "-pk")
            .values_list(*columns, "ingest_id", "actor")[:SHOWN_REVISIONS]
        )
        link = format_html(
            '<a href="{}">all revisions of this row</a>', changelist_url(revision_model, **url)
        )
        if not found:
            return format_html("none: as first loaded ({})", link)
        header = format_html_join("", "<th>{}</th>", ((c.replace("_", " "),) for c in columns))
        body = format_html_join(
            "",
            "<tr>{}<td>{}</td><td>{}</td></tr>",
            (
                (
                    format_html_join("", "<td>{}</td>", ((v,) for v in values[:-2])),
                    _ingest_link(values[-2]),
                    values[-1],
                )
                for values in found
            ),
        )
        return format_html(
            "<table><thead><tr>{}<th>ingest</th><th>actor</th></tr></thead>"
            "<tbody>{}</tbody></table>{}",
            header,
            body,
            link,
        )


def _ingest_link(ingest_id: int | None) -> SafeString | str:
    if ingest_id is None:
        return "-"  # a deletion: no load brought it
    url = reverse("admin:marketdata_ingest_change", args=[ingest_id])
    return format_html('<a href="{}">{}</a>', url, ingest_id)


class BarAdmin(ShowsRevisions, ViewOnly, LargeTableAdmin):
    list_display = ["instrument", "ts", "open", "high", "low", "close", "volume"]
    list_filter = [("ts", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


admin.site.register(MinuteBar, BarAdmin)
admin.site.register(DailyBar, BarAdmin)


@admin.register(Tick)
class TickAdmin(ShowsRevisions, ViewOnly, LargeTableAdmin):
    list_display = ["instrument", "ts", "sequence", "kind", "price", "size", "bid", "ask", "side"]
    list_filter = ["kind", "side", ("ts", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]
    revision_key = ("instrument", "ts", "sequence")
    revision_values = ("kind", "price", "size", "bid", "ask", "side")


@admin.register(OptionQuote)
class OptionQuoteAdmin(ShowsRevisions, ViewOnly, LargeTableAdmin):
    list_display = ["underlying", "ts", "expiry", "strike", "right", "bid", "ask", "iv", "delta"]
    list_filter = [
        "right",
        ("ts", admin.DateFieldListFilter),
        ("expiry", admin.DateFieldListFilter),
    ]
    raw_id_fields = ["underlying"]
    list_select_related = ["underlying"]
    search_fields = ["underlying__symbol__exact"]
    ordering = ["-ts"]
    revision_key = ("underlying", "ts", "expiry", "strike", "right")
    revision_values = ("bid", "ask", "last", "iv", "delta")


class RevisionAdmin(ViewOnly, LargeTableAdmin):
    """A revision table's rows: viewed by everyone who may view market data, auditors
    included; written by the owner's functions only (the application's role may only SELECT
    them), so never added, changed or deleted here. Listed in the order of the table's
    (instrument, ts) index, which also serves the exact symbol searched and the filter of
    one row's revisions."""

    list_display = [
        "instrument",
        "ts",
        "change",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "known_from",
        "known_until",
        "ingest_link",
        "actor",
    ]
    list_filter = [
        "change",
        ("ts", admin.DateFieldListFilter),
        ("known_until", admin.DateFieldListFilter),
    ]
    search_fields = ["instrument__symbol__exact"]
    # By the column, not the relation: ``instrument`` would order by the instrument's symbol.
    ordering = ["instrument_id", "ts"]

    @admin.display(description="ingest", ordering="ingest_id")
    def ingest_link(self, revision: Revision) -> SafeString | str:
        return _ingest_link(revision.ingest_id)


class BarRevisionAdmin(RevisionAdmin):
    pass


admin.site.register(MinuteBarRevision, BarRevisionAdmin)
admin.site.register(DailyBarRevision, BarRevisionAdmin)


@admin.register(TickRevision)
class TickRevisionAdmin(RevisionAdmin):
    list_display = [
        "instrument",
        "ts",
        "sequence",
        "change",
        "kind",
        "price",
        "size",
        "bid",
        "ask",
        "side",
        "known_from",
        "known_until",
        "ingest_link",
        "actor",
    ]
    list_filter = ["change", "kind", "side", *RevisionAdmin.list_filter[1:]]


@admin.register(OptionQuoteRevision)
class OptionQuoteRevisionAdmin(RevisionAdmin):
    list_display = [
        "underlying",
        "ts",
        "expiry",
        "strike",
        "right",
        "change",
        "bid",
        "ask",
        "iv",
        "delta",
        "known_from",
        "known_until",
        "ingest_link",
        "actor",
    ]
    list_filter = ["change", "right", *RevisionAdmin.list_filter[1:]]
    raw_id_fields = ["underlying"]
    list_select_related = ["underlying"]
    search_fields = ["underlying__symbol__exact"]
    ordering = ["underlying_id", "ts"]


@admin.register(Ingest)
class IngestAdmin(BlankToFieldIsThePk, CsvExport, NotCounted, admin.ModelAdmin):
    """Who loaded which file, when, and what came of it: read-only, the record of the loads.
    A load that changed stored rows links to the revisions it kept (the rows as they stood)."""

    list_display = [
        "started_at",
        "file_name",
        "kind",
        "symbol",
        "status",
        "rows_read",
        "inserted",
        "revised",
        "rejected",
        "who",
    ]
    list_filter = [
        "kind",
        "status",
        "instrument_created",
        ("started_at", admin.DateFieldListFilter),
    ]
    search_fields = ["file_name", "symbol", "sha256__exact"]
    ordering = ["-started_at"]
    list_select_related = ["user"]
    raw_id_fields = ["instrument", "user"]
    readonly_fields = ["revisions"]
    # The export keeps the stored count, ``updated``, where the list shows it as a link.
    export_fields = [
        "started_at",
        "file_name",
        "kind",
        "symbol",
        "status",
        "rows_read",
        "inserted",
        "updated",
        "rejected",
    ]

    @admin.display(description="who")
    def who(self, ingest: Ingest) -> str:
        return ingest.user.get_username() if ingest.user else ingest.os_user

    @admin.display(description="revised", ordering="updated")
    def revised(self, ingest: Ingest) -> SafeString | int:
        """The stored rows the load changed (``updated``), linked to the revisions it kept:
        no query per row, the count is the load's own."""
        revision_model = INGEST_REVISIONS.get(ingest.kind)
        if not ingest.updated or revision_model is None:
            return ingest.updated
        url = changelist_url(revision_model, ingest__id__exact=ingest.pk)
        return format_html('<a href="{}">{}</a>', url, ingest.updated)

    @admin.display(description="revisions")
    def revisions(self, ingest: Ingest) -> SafeString | str:
        """How many revisions the load kept, counted by the revision table's index on the
        load, and a link to them."""
        revision_model = INGEST_REVISIONS.get(ingest.kind)
        if ingest.pk is None or revision_model is None:
            return "-"
        count = revision_model.objects.filter(ingest_id=ingest.pk).count()
        url = changelist_url(revision_model, ingest__id__exact=ingest.pk)
        noun = "revision" if count == 1 else "revisions"
        return format_html(
            '<a href="{}">{} {}</a> (the stored rows this load changed, as they stood before)',
            url,
            count,
            noun,
        )

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
