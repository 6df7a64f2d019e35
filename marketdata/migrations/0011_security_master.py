"""The security master: each instrument's terms over time (``Listing``: symbol, name, MIC,
currency, identifiers, status, valid from one date until another, known from when the system
learnt them), kept in step with the instrument's own row (marketdata/sql/listings/0011.sql).
Today's instruments become the first version of each history, valid since always, with
nothing lost; a symbol is unique among listed instruments only (a ticker a delisted one bore
may be another's now). Versions may not overlap for one instrument, nor a ticker name two
listed instruments on a day: exclusion constraints, which need btree_gist (a trusted
extension of PostgreSQL's contrib, in every engine QVP runs on).

A merge of market data checks that its load's symbol is one its instrument bore at some time
(marketdata/sql/revisions/0011.sql), so a load of FB's 2020 bars merges into the instrument now
called META.

Unapplied, the history goes (the instruments' rows keep today's terms)."""

import django.contrib.postgres.constraints
import django.contrib.postgres.fields.ranges
import django.db.models.deletion
from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations, models

from qvp_site.db.audit import AuditChanges
from qvp_site.db.sqlfiles import read_sql

# Each instrument as it is today: its first version, since always; an inactive one delisted.
# Its exchange is free text (NASDAQ, NYSE), not a MIC, and stays on its row: the version's MIC
# is left empty for a load of the security master to state.
FIRST_VERSIONS = """
INSERT INTO marketdata_listing (instrument_id, valid_from, valid_until, symbol, name, mic,
                                currency, status, isin, figi, vendor_ids)
SELECT id, NULL, NULL, symbol, '', '', currency,
       CASE WHEN active THEN 'listed' ELSE 'delisted' END, '', '', '{}'
FROM marketdata_instrument ORDER BY id
"""

DROP = """
DROP TRIGGER IF EXISTS marketdata_instrument_listed ON marketdata_instrument;
DROP TRIGGER IF EXISTS marketdata_instrument_relisted ON marketdata_instrument;
DROP TRIGGER IF EXISTS marketdata_listing_kept ON marketdata_listing;
DROP FUNCTION IF EXISTS marketdata_instrument_listed(), marketdata_instrument_relisted(),
    marketdata_listing_kept(), marketdata_listing_set(bigint, date, date, text, text, text,
    text, text, text, text, jsonb), marketdata_listing_put(bigint, date, date, text, text, text,
    text, text, text, text, jsonb, boolean), marketdata_listing_clear(bigint, date, date),
    marketdata_listing_cut(bigint, date, date, timestamptz),
    marketdata_listing_lock(bigint, date, date), marketdata_listing_sync(bigint),
    marketdata_listing_today(bigint), marketdata_listings_known_at(timestamptz),
    marketdata_resolve_symbols(text[], date, timestamptz),
    marketdata_resolve_symbol(text, date, timestamptz), marketdata_universe(date, timestamptz),
    marketdata_listing_status(boolean);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0010_ingest_audited"),
    ]

    operations = [
        BtreeGistExtension(),
        migrations.CreateModel(
            name="Listing",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "valid_from",
                    models.DateField(blank=True, help_text="empty: since always", null=True),
                ),
                (
                    "valid_until",
                    models.DateField(blank=True, help_text="excluded; empty: still", null=True),
                ),
                ("symbol", models.CharField(max_length=64)),
                ("name", models.CharField(blank=True, max_length=200)),
                ("mic", models.CharField(blank=True, max_length=4, verbose_name="exchange (MIC)")),
                ("currency", models.CharField(max_length=5)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("listed", "listed"),
                            ("suspended", "suspended"),
                            ("delisted", "delisted"),
                        ],
                        default="listed",
                        max_length=9,
                    ),
                ),
                ("isin", models.CharField(blank=True, max_length=12, verbose_name="ISIN")),
                ("figi", models.CharField(blank=True, max_length=12, verbose_name="FIGI")),
                (
                    "vendor_ids",
                    models.JSONField(blank=True, default=dict, verbose_name="vendor identifiers"),
                ),
                (
                    "known_from",
                    models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        help_text="when the system learnt it",
                    ),
                ),
                (
                    "known_until",
                    models.DateTimeField(
                        blank=True,
                        help_text="when a corrected history replaced it (empty: current)",
                        null=True,
                    ),
                ),
            ],
            options={
                "ordering": ["instrument", "valid_from", "known_from"],
            },
        ),
        migrations.AlterField(
            model_name="instrument",
            name="symbol",
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name="instrument",
            constraint=models.UniqueConstraint(
                condition=models.Q(("active", True)),
                fields=("symbol",),
                name="instrument_symbol_active",
            ),
        ),
        migrations.AddField(
            model_name="listing",
            name="instrument",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="listings",
                to="marketdata.instrument",
            ),
        ),
        migrations.AddIndex(
            model_name="listing",
            index=models.Index(fields=["symbol", "valid_from"], name="listing_by_symbol"),
        ),
        migrations.AddIndex(
            model_name="listing",
            index=models.Index(fields=["instrument", "valid_from"], name="listing_by_instrument"),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("valid_until__isnull", True),
                    ("valid_from__isnull", True),
                    ("valid_until__gt", models.F("valid_from")),
                    _connector="OR",
                ),
                name="listing_dates_in_order",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["listed", "suspended", "delisted"])),
                name="listing_status_known",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(("symbol", ""), _negated=True), name="listing_symbol_not_empty"
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(("currency__regex", "^[A-Z0-9]{3,5}$")),
                name="listing_currency_code",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(("mic", ""), ("mic__regex", "^[A-Z0-9]{4}$"), _connector="OR"),
                name="listing_mic_code",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("isin", ""), ("isin__regex", "^[A-Z]{2}[A-Z0-9]{9}[0-9]$"), _connector="OR"
                ),
                name="listing_isin_code",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("figi", ""), ("figi__regex", "^[A-Z]{2}G[A-Z0-9]{8}[0-9]$"), _connector="OR"
                ),
                name="listing_figi_code",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("known_until__isnull", True),
                    ("known_until__gte", models.F("known_from")),
                    _connector="OR",
                ),
                name="listing_known_in_order",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=django.contrib.postgres.constraints.ExclusionConstraint(
                condition=models.Q(("known_until__isnull", True)),
                expressions=[
                    ("instrument", "="),
                    (
                        models.Func(
                            models.F("valid_from"),
                            models.F("valid_until"),
                            function="daterange",
                            output_field=django.contrib.postgres.fields.ranges.DateRangeField(),
                        ),
                        "&&",
                    ),
                ],
                name="listing_one_version_a_day",
            ),
        ),
        migrations.AddConstraint(
            model_name="listing",
            constraint=django.contrib.postgres.constraints.ExclusionConstraint(
                condition=models.Q(
                    ("known_until__isnull", True), models.Q(("status", "delisted"), _negated=True)
                ),
                expressions=[
                    ("symbol", "="),
                    (
                        models.Func(
                            models.F("valid_from"),
                            models.F("valid_until"),
                            function="daterange",
                            output_field=django.contrib.postgres.fields.ranges.DateRangeField(),
                        ),
                        "&&",
                    ),
                ],
                name="listing_one_bearer_a_day",
            ),
        ),
        AuditChanges("Listing"),
        migrations.RunSQL(FIRST_VERSIONS, migrations.RunSQL.noop),
        migrations.RunSQL(read_sql("marketdata", "listings", "0011"), DROP),
        # The merges' check of a load's symbol reads the history (version 0011 of revisions).
        migrations.RunSQL(
            read_sql("marketdata", "revisions", "0011"),
            "DROP FUNCTION IF EXISTS marketdata_merge_dates_check(bigint, bigint, timestamptz,"
            " timestamptz);" + read_sql("marketdata", "revisions", "0009"),
        ),
    ]
