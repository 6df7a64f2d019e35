BEGIN;
--
-- Create hnsw index featureembedding_cosine_hnsw on FeatureEmbedding.embedding for cosine distance (m=12, ef_construction=48)
--
DROP INDEX IF EXISTS "featureembedding_cosine_hnsw";
--
-- Raw SQL operation
--
SET LOCAL maintenance_work_mem = '512MB';
CREATE INDEX IF NOT EXISTS "featureembedding_cosine_hnsw" ON "vectors_featureembedding" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 64);
COMMIT;
