"""The demo seeder: recent feature windows, every regime, recent patterns, in one call."""

from __future__ import annotations

from datetime import UTC, datetime

from vectors import demo
from vectors.models import FeatureEmbedding, StrategyPattern, VolatilityRegime


def test_the_demo_seeder_builds_all_three(months_of_bars):
    lines = []
    demo.seed(list(months_of_bars.values()), lines.append)
    newest = datetime(2024, 5, 17, 20, 0, tzinfo=UTC)
    embedded = FeatureEmbedding.objects.values_list("ts", flat=True)
    assert min(embedded) >= newest - demo.FEATURE_SPAN
    assert max(embedded) == newest
    assert VolatilityRegime.objects.count() == 2 * (80 - 64)
    decided = StrategyPattern.objects.values_list("ts", flat=True)
    assert min(decided) >= newest - demo.PATTERN_SPAN
    assert lines[0].startswith(f"Vectors: {len(embedded):,} feature embeddings, 32 regime")
    # Seeding again (seed_demo --replace) replaces rather than adds.
    demo.seed(list(months_of_bars.values()), lines.append)
    assert FeatureEmbedding.objects.count() == len(embedded)
    assert StrategyPattern.objects.count() == len(decided)
    assert VolatilityRegime.objects.count() == 32
