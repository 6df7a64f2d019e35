"""Feature sets and their fitted scalers: what a vector table's rows were computed with.

Writing the rows is database machinery shared with anything bulk-loaded:
``qvp_site.db.binary_copy`` (binary COPY built with numpy) and ``qvp_site.db.set_aside``
(indexes and foreign keys dropped before a first load and restored after).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vectors.features import Scaler
from vectors.models import FeatureSet


@dataclass(frozen=True)
class SetSpec:
    """What a feature set is, before it is fitted: the pipeline's name, version and layout."""

    name: str
    version: int
    kind: str
    timeframe: str
    stride: int
    feature_names: tuple[str, ...]
    description: str

    @property
    def dimensions(self) -> int:
        return len(self.feature_names)

    def stored(self) -> FeatureSet | None:
        return FeatureSet.objects.filter(name=self.name, version=self.version).first()

    def fitted(self, raw: np.ndarray) -> FeatureSet:
        """The stored set, or a new one whose scaler is fitted on ``raw`` (its first build)."""
        found = self.stored()
        if found is not None:
            if list(found.feature_names) != list(self.feature_names):
                raise ValueError(f"{self.name} v{self.version} is stored with other features")
            return found
        scaler = Scaler.fit(raw)
        return FeatureSet.objects.create(
            name=self.name,
            version=self.version,
            kind=self.kind,
            dimensions=self.dimensions,
            timeframe=self.timeframe,
            stride=self.stride,
            feature_names=list(self.feature_names),
            center=scaler.center.tolist(),
            scale=scaler.scale.tolist(),
            fitted_rows=len(raw),
            description=self.description,
        )


def scaler_of(feature_set: FeatureSet) -> Scaler:
    """The scaler a set was fitted with, so that later rows are scaled as its first were."""
    return Scaler(center=np.array(feature_set.center), scale=np.array(feature_set.scale))
