BEGIN;
--
-- Create model Tick
--
DROP TABLE "marketdata_tick" CASCADE;
--
-- Create model OptionQuote
--
DROP TABLE "marketdata_optionquote" CASCADE;
--
-- Create model MinuteBar
--
DROP TABLE "marketdata_minutebar" CASCADE;
--
-- Create model DailyBar
--
DROP TABLE "marketdata_dailybar" CASCADE;
--
-- Create model Instrument
--
DROP TABLE "marketdata_instrument" CASCADE;
COMMIT;
