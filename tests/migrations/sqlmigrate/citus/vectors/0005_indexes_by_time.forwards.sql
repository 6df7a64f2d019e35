BEGIN;
--
-- Create index featureembedding_by_time on field(s) feature_set, ts, id of model featureembedding
--
CREATE INDEX "featureembedding_by_time" ON "vectors_featureembedding" ("feature_set_id", "ts", "id");
COMMIT;
