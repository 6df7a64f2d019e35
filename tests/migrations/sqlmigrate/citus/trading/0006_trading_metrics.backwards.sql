BEGIN;
--
-- Raw SQL operation
--
DROP VIEW IF EXISTS trading_metrics;
COMMIT;
