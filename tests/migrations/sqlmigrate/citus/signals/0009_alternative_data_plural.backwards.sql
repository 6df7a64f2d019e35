BEGIN;
--
-- Change Meta options on alternativedata
--
-- (no-op)
COMMIT;
