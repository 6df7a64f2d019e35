BEGIN;
--
-- Remove constraint featureembedding_raw_list from model featureembedding
--
ALTER TABLE "vectors_featureembedding" DROP CONSTRAINT "featureembedding_raw_list";
--
-- Custom state/database change combination
--
ALTER TABLE vectors_featureembedding ALTER COLUMN raw TYPE double precision[] USING translate(raw::text, '[]', '{}')::double precision[];
--
-- Create constraint featureembedding_raw_features on model featureembedding
--
ALTER TABLE "vectors_featureembedding" ADD CONSTRAINT "featureembedding_raw_features" CHECK ((array_ndims("raw") = 1 AND CASE WHEN "raw" IS NULL THEN NULL ELSE coalesce(array_length("raw", 1), 0) END = 128));
COMMIT;
