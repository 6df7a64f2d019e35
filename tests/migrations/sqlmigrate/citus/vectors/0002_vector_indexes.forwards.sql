BEGIN;
--
-- Create hnsw index featureembedding_cosine_hnsw on FeatureEmbedding.embedding for cosine distance (m=16, ef_construction=64)
--
SET LOCAL maintenance_work_mem = '512MB';
CREATE INDEX IF NOT EXISTS "featureembedding_cosine_hnsw" ON "vectors_featureembedding" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 64);
--
-- Create hnsw index volatilityregime_cosine_hnsw on VolatilityRegime.signature for cosine distance (m=16, ef_construction=64)
--
SET LOCAL maintenance_work_mem = '512MB';
CREATE INDEX IF NOT EXISTS "volatilityregime_cosine_hnsw" ON "vectors_volatilityregime" USING hnsw ("signature" vector_cosine_ops) WITH (m = 16, ef_construction = 64);
--
-- Create hnsw index strategypattern_cosine_hnsw on StrategyPattern.state for cosine distance (m=16, ef_construction=64)
--
SET LOCAL maintenance_work_mem = '512MB';
CREATE INDEX IF NOT EXISTS "strategypattern_cosine_hnsw" ON "vectors_strategypattern" USING hnsw ("state" vector_cosine_ops) WITH (m = 16, ef_construction = 64);
COMMIT;
