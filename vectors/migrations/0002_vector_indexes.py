"""One HNSW index per table, for the cosine distance its searches use (see vectors/search.py).

m = 16 and ef_construction = 64 are pgvector's defaults and measured enough here: recall@10
of 0.95 and more at ef_search 40 on 100,000 feature vectors (bench/vectors.py).
"""

from django.db import migrations

from qvp_site.db.vector_indexes import CreateVectorIndex


class Migration(migrations.Migration):
    dependencies = [("vectors", "0001_initial")]

    operations = [
        CreateVectorIndex("FeatureEmbedding", "featureembedding_cosine_hnsw", "embedding"),
        CreateVectorIndex("VolatilityRegime", "volatilityregime_cosine_hnsw", "signature"),
        CreateVectorIndex("StrategyPattern", "strategypattern_cosine_hnsw", "state"),
    ]
