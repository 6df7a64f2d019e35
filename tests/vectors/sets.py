"""A feature set for tests that store vectors: identity scaling, ``dims`` named features."""

from __future__ import annotations

from vectors.models import FeatureSet


def make_set(
    name: str, dims: int, kind: str = "features", *, timeframe: str = "1m", stride: int = 15
) -> FeatureSet:
    return FeatureSet.objects.create(
        name=name,
        version=1,
        kind=kind,
        dimensions=dims,
        timeframe=timeframe,
        stride=stride,
        feature_names=[f"f{i}" for i in range(dims)],
        center=[0.0] * dims,
        scale=[1.0] * dims,
        fitted_rows=1,
    )
