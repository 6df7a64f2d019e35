BEGIN;
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS marketdata_ingest_kept ON marketdata_ingest;
DROP FUNCTION IF EXISTS marketdata_ingest_kept();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "marketdata_ingest";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "marketdata_ingest";
COMMIT;
