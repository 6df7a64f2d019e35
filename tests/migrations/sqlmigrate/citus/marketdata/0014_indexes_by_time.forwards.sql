BEGIN;
--
-- Create index optionquote_by_time on field(s) underlying, ts, expiry, strike, right of model optionquote
--
CREATE INDEX "optionquote_by_time" ON "marketdata_optionquote" ("underlying_id", "ts", "expiry", "strike", "right");
COMMIT;
