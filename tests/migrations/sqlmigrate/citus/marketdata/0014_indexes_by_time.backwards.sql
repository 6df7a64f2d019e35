BEGIN;
--
-- Create index optionquote_by_time on field(s) underlying, ts, expiry, strike, right of model optionquote
--
DROP INDEX IF EXISTS "optionquote_by_time";
COMMIT;
