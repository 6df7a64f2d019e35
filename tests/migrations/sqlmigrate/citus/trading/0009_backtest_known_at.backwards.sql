BEGIN;
--
-- Add field code_version to backtestrun
--
ALTER TABLE "trading_backtestrun" DROP COLUMN "code_version" CASCADE;
--
-- Add field known_at to backtestrun
--
ALTER TABLE "trading_backtestrun" DROP COLUMN "known_at" CASCADE;
COMMIT;
