BEGIN;
--
-- Create constraint featureembedding_raw_features on model featureembedding
--
ALTER TABLE "vectors_featureembedding" DROP CONSTRAINT "featureembedding_raw_features";
--
-- Custom state/database change combination
--
ALTER TABLE vectors_featureembedding ALTER COLUMN raw TYPE jsonb USING to_jsonb(raw);
--
-- Remove constraint featureembedding_raw_list from model featureembedding
--
ALTER TABLE "vectors_featureembedding" ADD CONSTRAINT "featureembedding_raw_list" CHECK (jsonb_typeof("raw") = 'array');
COMMIT;
