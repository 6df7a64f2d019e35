BEGIN;
--
-- Raw SQL operation
--

DROP FUNCTION IF EXISTS detect_market_data_anomalies(text, double precision, timestamptz,
                                                     double precision);
DROP FUNCTION IF EXISTS risk_market_anomalies(bigint, timestamptz, timestamptz, double precision);
DROP FUNCTION IF EXISTS risk_require_market_data(text);

--
-- Create model TradingPeriod
--
DROP TABLE "risk_tradingperiod" CASCADE;
--
-- Create model TradingCalendar
--
DROP TABLE "risk_tradingcalendar" CASCADE;
COMMIT;
