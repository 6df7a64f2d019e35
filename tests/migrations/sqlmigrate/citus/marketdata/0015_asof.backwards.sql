BEGIN;
--
-- Raw SQL operation
--

DROP FUNCTION IF EXISTS
    marketdata_quote_asof(bigint, timestamptz, interval, boolean),
    marketdata_quote_after(bigint, timestamptz, interval, boolean),
    marketdata_trade_asof(bigint, timestamptz, interval, boolean),
    marketdata_trade_after(bigint, timestamptz, interval, boolean),
    marketdata_tick_asof(bigint, timestamptz, interval, boolean),
    marketdata_tick_after(bigint, timestamptz, interval, boolean),
    marketdata_minutebar_asof(bigint, timestamptz, interval, boolean),
    marketdata_minutebar_after(bigint, timestamptz, interval, boolean),
    marketdata_dailybar_asof(bigint, timestamptz, interval, boolean),
    marketdata_dailybar_after(bigint, timestamptz, interval, boolean),
    marketdata_asof_check(text, interval, boolean);

--
-- Create index tick_quote_by_time on field(s) instrument, ts, sequence of model tick
--
DROP INDEX IF EXISTS "tick_quote_by_time";
COMMIT;
