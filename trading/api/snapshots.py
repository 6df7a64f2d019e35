"""``/api/v1/portfolio/snapshots/``: portfolio snapshots of the user's accounts, newest first
(read-only: ``snapshot_portfolios`` writes them). The list answers in the bulk formats too
(``qvp_site.api.bulk``): every snapshot of a bounded range of ``ts``, oldest first, scoped as the
JSON list is; ``unpriced`` is its JSON as text there."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from qvp_site.api import NewestFirstPagination, TimeRangeQuery, schema_parameters, time_lookups
from qvp_site.api.bulk import BulkFormats
from trading.api.scoping import AccountQuery, ScopedViewSet
from trading.models import PortfolioSnapshot


class SnapshotQuery(AccountQuery, TimeRangeQuery):
    pass


class SnapshotSerializer(serializers.ModelSerializer[PortfolioSnapshot]):
    class Meta:
        model = PortfolioSnapshot
        fields = [
            "id",
            "account",
            "ts",
            "currency",
            "cash",
            "market_value",
            "nav",
            "gross_exposure",
            "net_exposure",
            "daily_pnl",
            "unpriced",
        ]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=schema_parameters(SnapshotQuery)))
class SnapshotViewSet(BulkFormats, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Portfolio snapshots of your accounts, newest first (read-only); oldest first in the
    bulk formats (ordered by ts, pk: the mixin's default)."""

    queryset = PortfolioSnapshot.objects.all()
    serializer_class = SnapshotSerializer
    pagination_class = NewestFirstPagination
    query_class = SnapshotQuery
    lookups = {"account": "account", **time_lookups("ts")}
