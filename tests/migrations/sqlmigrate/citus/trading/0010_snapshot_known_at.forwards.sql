BEGIN;
--
-- Add field code_version to portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" ADD COLUMN "code_version" varchar(100) DEFAULT '' NOT NULL;
ALTER TABLE "trading_portfoliosnapshot" ALTER COLUMN "code_version" DROP DEFAULT;
--
-- Add field known_at to portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" ADD COLUMN "known_at" timestamp with time zone NULL;
COMMIT;
