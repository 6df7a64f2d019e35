BEGIN;
--
-- Raw SQL operation
--

DROP TRIGGER IF EXISTS trading_execution_booked_now ON trading_execution;
DROP TRIGGER IF EXISTS trading_cashentry_booked_now ON trading_cashentry;
DROP FUNCTION IF EXISTS trading_booked_now();

COMMIT;
