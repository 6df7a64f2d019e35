BEGIN;
--
-- Raw SQL operation
--

DROP FUNCTION IF EXISTS calculate_signal_performance(text, integer, timestamptz);
DROP FUNCTION IF EXISTS signals_signal_outcomes(text, integer, timestamptz);
DROP FUNCTION IF EXISTS signals_price_at(bigint, timestamptz);

COMMIT;
