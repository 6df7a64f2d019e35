"""The feature embeddings' HNSW index built again with m 12 and ef_construction 48 (16 and 64
in 0002), for inserts that keep up with the desk's writers (issue 27).

An insert into an HNSW graph is a search for its neighbours (ef_construction candidates at
each layer) and an update of up to 2m of their neighbour lists: on 2 cores, 100,000 feature
vectors in the table, the server spent 2.1 ms on one insert with m 16 and ef_construction 64,
1.4 ms with 12 and 48. The search service keeps its promise with the smaller graph: recall@10
against an exact search of 1,000 held-out windows (bench/vectors.py, 300 of them in the
measurement) fell from 0.995 to 0.990 at ef_search 40 (the default; the goal is 0.95) and from
0.987 to 0.977 at 20. tests/vectors/test_index_recall.py holds it above 0.95 on a seeded set.

The regimes' and patterns' indexes keep 0002's parameters: they are written once a day.
Rebuilding the index reads the whole table: about 25 s for 100,000 rows here.
"""

from django.db import migrations

from qvp_site.db.vector_indexes import CreateVectorIndex, VectorIndex, drop_index_sql

TABLE, NAME = "vectors_featureembedding", "featureembedding_cosine_hnsw"
# What 0002 built, built again when this migration is reversed.
BEFORE = VectorIndex(NAME, TABLE, "embedding", m=16, ef_construction=64)


class Migration(migrations.Migration):
    dependencies = [("vectors", "0005_indexes_by_time")]

    operations = [
        migrations.RunSQL(drop_index_sql(NAME), reverse_sql=BEFORE.build_sql()),
        CreateVectorIndex("FeatureEmbedding", NAME, "embedding", m=12, ef_construction=48),
    ]
