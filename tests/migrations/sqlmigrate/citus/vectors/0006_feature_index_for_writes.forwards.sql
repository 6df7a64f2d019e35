BEGIN;
--
-- Raw SQL operation
--
DROP INDEX IF EXISTS "featureembedding_cosine_hnsw";
--
-- Create hnsw index featureembedding_cosine_hnsw on FeatureEmbedding.embedding for cosine distance (m=12, ef_construction=48)
--
SET LOCAL maintenance_work_mem = '512MB';
CREATE INDEX IF NOT EXISTS "featureembedding_cosine_hnsw" ON "vectors_featureembedding" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 12, ef_construction = 48);
COMMIT;
