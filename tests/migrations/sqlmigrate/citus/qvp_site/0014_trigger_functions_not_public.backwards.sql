BEGIN;
--
-- Raw SQL operation
--
-- (no-op)
COMMIT;
