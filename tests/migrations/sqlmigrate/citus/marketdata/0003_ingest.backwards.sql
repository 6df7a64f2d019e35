BEGIN;
--
-- Create model Ingest
--
DROP TABLE "marketdata_ingest" CASCADE;
COMMIT;
