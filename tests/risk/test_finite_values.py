"""No risk table holds NaN or an infinity, from any writer: the jobs never write one, and psql
or another writer is refused by the database, so every list can be answered in JSON."""

from __future__ import annotations

import math

import pytest
from django.db import IntegrityError, transaction

from risk.models import FactorExposure, MarketAnomaly, RiskMetric, VolatilityEstimate
from tests.risk.conftest import day
from tests.risk.conftest import instrument as make_instrument

NOT_NUMBERS = [math.nan, math.inf, -math.inf]


def refused(rule: str, create) -> None:
    with pytest.raises(IntegrityError, match=rule), transaction.atomic():
        create()


@pytest.mark.parametrize("bad", NOT_NUMBERS, ids=["nan", "inf", "-inf"])
def test_a_time_series_of_risk_refuses_what_is_not_a_number(account, bad):
    instrument = make_instrument("NAN")
    refused(
        "volatility_value_finite|volatility_not_negative",
        lambda: VolatilityEstimate.objects.create(
            instrument=instrument, ts=day(1), estimator="parkinson", window=20, value=bad
        ),
    )
    refused(
        "risk_metric_values_finite",
        lambda: RiskMetric.objects.create(
            account=account, ts=day(1), metric="var_historical", value=bad
        ),
    )
    refused(
        "risk_metric_values_finite|risk_metric_confidence_range",
        lambda: RiskMetric.objects.create(
            account=account, ts=day(1), metric="var_historical", value=1.0, confidence=bad
        ),
    )
    refused(
        "factor_exposure_finite",
        lambda: FactorExposure.objects.create(
            account=account, ts=day(1), factor="market", exposure=bad
        ),
    )
    refused(
        "market_anomaly_values_finite",
        lambda: MarketAnomaly.objects.create(
            instrument=instrument, ts=day(1), kind="return", value=bad
        ),
    )
    assert not RiskMetric.objects.exists()


def test_negative_measurements_stay_allowed(account):
    RiskMetric.objects.create(account=account, ts=day(1), metric="total_return", value=-0.02)
    FactorExposure.objects.create(account=account, ts=day(1), factor="market", exposure=-1.5)
    assert RiskMetric.objects.get().value == -0.02
