BEGIN;
--
-- Add field known_at to portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" DROP COLUMN "known_at" CASCADE;
--
-- Add field code_version to portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" DROP COLUMN "code_version" CASCADE;
COMMIT;
