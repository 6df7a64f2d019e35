BEGIN;
--
-- Create constraint tick_values_finite on model tick
--
ALTER TABLE "marketdata_tick" DROP CONSTRAINT "tick_values_finite";
--
-- Create constraint optionquote_values_finite on model optionquote
--
ALTER TABLE "marketdata_optionquote" DROP CONSTRAINT "optionquote_values_finite";
--
-- Create constraint minutebar_values_finite on model minutebar
--
ALTER TABLE "marketdata_minutebar" DROP CONSTRAINT "minutebar_values_finite";
--
-- Create constraint dailybar_values_finite on model dailybar
--
ALTER TABLE "marketdata_dailybar" DROP CONSTRAINT "dailybar_values_finite";
COMMIT;
