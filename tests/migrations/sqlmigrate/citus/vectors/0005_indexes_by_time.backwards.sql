BEGIN;
--
-- Create index featureembedding_by_time on field(s) feature_set, ts, id of model featureembedding
--
DROP INDEX IF EXISTS "featureembedding_by_time";
COMMIT;
