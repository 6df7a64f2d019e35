from django.apps import AppConfig

# The time-series tables of market data (FX and crypto are instruments of these).
TIME_SERIES_TABLES = (
    "marketdata_minutebar",
    "marketdata_dailybar",
    "marketdata_tick",
    "marketdata_optionquote",
)


class MarketdataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    # What the application's database role may do with this app's tables beyond SELECT
    # (`manage.py create_db_roles` applies it). Market data is written by loads only: new rows
    # are inserted, and a stored bar is rewritten by marketdata_merge_bars, which runs as the
    # owner (marketdata/sql/loads/0007.sql); never UPDATE, DELETE or TRUNCATE.
    app_role_privileges = dict.fromkeys(TIME_SERIES_TABLES, "INSERT")
