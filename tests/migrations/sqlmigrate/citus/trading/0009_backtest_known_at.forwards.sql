BEGIN;
--
-- Add field known_at to backtestrun
--
ALTER TABLE "trading_backtestrun" ADD COLUMN "known_at" timestamp with time zone NULL;
--
-- Add field code_version to backtestrun
--
ALTER TABLE "trading_backtestrun" ADD COLUMN "code_version" varchar(100) DEFAULT '' NOT NULL;
ALTER TABLE "trading_backtestrun" ALTER COLUMN "code_version" DROP DEFAULT;
COMMIT;
