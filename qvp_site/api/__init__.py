"""What every app's REST API shares; each app's ``api`` module holds only its endpoints.

- ``errors``: the ``{detail, rule}`` refusal, and the database's and the domain's refusals
  answered with it (400, 409, 403; never 500);
- ``permissions``: auditors read only; writes needing the model's permission;
- ``fields``: times, finite numbers, ids, records named by a unique text;
- ``queries``: query parameters validated, and the list filtered by them;
- ``time_ranges``: ``start``/``end`` on every list (``since``/``until`` deprecated);
- ``pagination``: numbered pages, cursor pages, newest first;
- ``batches``: one object or a list of them, validated whole.

It imports no app: what is an app's (instruments, accounts, its conflict rules) is passed in.
"""

from qvp_site.api.batches import MAX_BATCH, Batch
from qvp_site.api.errors import (
    RefusalsAsResponses,
    RefusalSerializer,
    Refused,
    judged_by_database,
    refusal,
)
from qvp_site.api.fields import (
    MAX_ID,
    FiniteFloatField,
    TimeField,
    as_id,
    id_field,
    requesting_user,
)
from qvp_site.api.pagination import (
    CursorPagination,
    NewestFirstPagination,
    PageNumberPagination,
    newest_first,
)
from qvp_site.api.permissions import ReadOnlyForAuditors, WritesNeedModelPermission
from qvp_site.api.queries import QueriedViewSet, query_parameters, schema_parameters
from qvp_site.api.time_ranges import TimeRangeQuery, time_lookups, within

__all__ = [
    "MAX_BATCH",
    "MAX_ID",
    "Batch",
    "CursorPagination",
    "FiniteFloatField",
    "NewestFirstPagination",
    "PageNumberPagination",
    "QueriedViewSet",
    "ReadOnlyForAuditors",
    "RefusalSerializer",
    "RefusalsAsResponses",
    "Refused",
    "TimeField",
    "TimeRangeQuery",
    "WritesNeedModelPermission",
    "as_id",
    "id_field",
    "judged_by_database",
    "newest_first",
    "query_parameters",
    "refusal",
    "requesting_user",
    "schema_parameters",
    "time_lookups",
    "within",
]
