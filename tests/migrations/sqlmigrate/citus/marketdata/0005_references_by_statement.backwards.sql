BEGIN;
--
-- Check OptionQuote.underlying once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_ins" ON "marketdata_optionquote";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_upd" ON "marketdata_optionquote";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_protect" ON "marketdata_instrument";
--
-- Check Tick.instrument once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_ins" ON "marketdata_tick";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_upd" ON "marketdata_tick";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_protect" ON "marketdata_instrument";
--
-- Check DailyBar.instrument once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_ins" ON "marketdata_dailybar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_upd" ON "marketdata_dailybar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_protect" ON "marketdata_instrument";
--
-- Check MinuteBar.instrument once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_ins" ON "marketdata_minutebar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_upd" ON "marketdata_minutebar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_protect" ON "marketdata_instrument";
--
-- Raw SQL operation
--
DROP FUNCTION IF EXISTS qvp_check_reference(), qvp_protect_referenced();
--
-- Alter field instrument on tick
--
ALTER TABLE "marketdata_tick" ADD CONSTRAINT "marketdata_tick_instrument_id_986ec48a_fk_marketdat" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument" ("id") DEFERRABLE INITIALLY DEFERRED;
--
-- Alter field underlying on optionquote
--
ALTER TABLE "marketdata_optionquote" ADD CONSTRAINT "marketdata_optionquo_underlying_id_5db08191_fk_marketdat" FOREIGN KEY ("underlying_id") REFERENCES "marketdata_instrument" ("id") DEFERRABLE INITIALLY DEFERRED;
--
-- Alter field instrument on minutebar
--
ALTER TABLE "marketdata_minutebar" ADD CONSTRAINT "marketdata_minutebar_instrument_id_cbea6fbe_fk_marketdat" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument" ("id") DEFERRABLE INITIALLY DEFERRED;
--
-- Alter field instrument on dailybar
--
ALTER TABLE "marketdata_dailybar" ADD CONSTRAINT "marketdata_dailybar_instrument_id_29f7219b_fk_marketdat" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument" ("id") DEFERRABLE INITIALLY DEFERRED;
COMMIT;
