BEGIN;
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS marketdata_ingest_kept ON marketdata_ingest;
DROP TRIGGER IF EXISTS marketdata_ingest_started ON marketdata_ingest;
DROP TRIGGER IF EXISTS marketdata_ingest_user_gone ON marketdata_ingest;
DROP FUNCTION IF EXISTS marketdata_ingest_kept(), marketdata_ingest_started(), marketdata_ingest_user_gone();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "marketdata_ingest";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "marketdata_ingest";
COMMIT;
