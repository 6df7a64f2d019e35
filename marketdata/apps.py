from django.apps import AppConfig

# The time-series tables of market data (FX and crypto are instruments of these).
TIME_SERIES_TABLES = (
    "marketdata_minutebar",
    "marketdata_dailybar",
    "marketdata_tick",
    "marketdata_optionquote",
)
# Where each keeps the rows a change replaced (marketdata.models.Revision).
REVISION_TABLES = tuple(f"{table}revision" for table in TIME_SERIES_TABLES)
# Every version of each one's rows: the current ones and the revisions (read by <table>_known_at).
HISTORY_VIEWS = tuple(f"{table}_history" for table in TIME_SERIES_TABLES)


class MarketdataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    # What the application's database role may do with this app's tables beyond SELECT
    # (`manage.py create_db_roles` applies it). Market data is written by loads only: new rows
    # are inserted, and a stored row is rewritten or deleted by the owner's functions
    # (marketdata/sql/revisions/0009.sql), which keep what they replace in the revisions;
    # never UPDATE, DELETE or TRUNCATE. The revisions are theirs alone to write.
    app_role_privileges = {
        **dict.fromkeys(TIME_SERIES_TABLES, "INSERT"),
        **dict.fromkeys(REVISION_TABLES, ""),
        **dict.fromkeys(HISTORY_VIEWS, ""),
        # A load's record is inserted when it starts and updated when it ends; never deleted:
        # the revisions it kept name it, and the audit log holds it to its last state. What
        # an update may change is the database's rule (marketdata/sql/ingests/0010.sql).
        "marketdata_ingest": "INSERT, UPDATE",
        # The security master: versions are written by the owner's functions only
        # (marketdata_listing_set, _clear; an instrument's own row changed in place changes
        # its history through them, by trigger), never edited in place nor deleted.
        "marketdata_listing": "",
        # Corporate actions likewise: stated and withdrawn through the owner's functions
        # (marketdata_action_set, _withdraw), never edited in place nor deleted.
        "marketdata_corporateaction": "",
        # The exchanges' time zones (an action's ex moment follows them): a plain table the
        # owner's migrations fill (marketdata/sql/actions/0013.sql); read only.
        "marketdata_exchange": "",
        # On Citus, the instruments' keys, distributed beside the bars
        # (qvp_site/db/distribution.py): the lookups of bars by instrument start from them
        # (marketdata.prices, risk's functions); the owner's trigger alone writes them.
        "marketdata_instrument_key": "",
    }
    # When a row was learnt is the database's to say (its load's time), never the writer's:
    # a row backdated would show in reads as known before it was; one dated ahead would be in
    # none, nor ever revised.
    app_role_withheld_columns = dict.fromkeys(TIME_SERIES_TABLES, ("known_from",))
