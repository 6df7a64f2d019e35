BEGIN;
--
-- Raw SQL operation
--

DROP TRIGGER IF EXISTS trading_snapshot_keep_revision ON trading_portfoliosnapshot;
DROP FUNCTION IF EXISTS trading_snapshot_keep_revision();
DROP TRIGGER IF EXISTS trading_snapshot_revision_append_only ON trading_portfoliosnapshotrevision;
DROP FUNCTION IF EXISTS trading_snapshot_revision_refuse_change();
DROP FUNCTION IF EXISTS trading_portfoliosnapshot_known_at(timestamptz);

--
-- Raw SQL operation
--
-- (no-op)
--
-- Create model PortfolioSnapshotRevision
--
DROP TABLE "trading_portfoliosnapshotrevision" CASCADE;
--
-- Add field known_from to portfoliosnapshot
--
ALTER TABLE "trading_portfoliosnapshot" DROP COLUMN "known_from" CASCADE;
COMMIT;
