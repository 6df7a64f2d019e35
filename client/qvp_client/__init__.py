"""qvp-client: QVP's API from Python, data as pandas, Polars or Arrow.

    from qvp_client import Client

    qvp = Client("https://qvp.example.com", token)
    bars = qvp.bars("AAPL", "2024-01-01", "2025-01-01", timeframe="1m")

See ``Client`` for the reads and writes, ``qvp_client.errors`` for the exceptions,
``qvp_client.http`` for the retries and ``qvp_client.frames`` for the types each output gives.
"""

from qvp_client.client import (
    BarsWritten,
    Client,
    Recommendation,
    SignalsWritten,
    SimilarRegimes,
    VaR,
    __version__,
)
from qvp_client.errors import (
    BatchRefused,
    Forbidden,
    NotAcceptable,
    NotFound,
    Problem,
    QvpError,
    Refused,
    ServerError,
    Throttled,
    Unauthorized,
    Unavailable,
)
from qvp_client.frames import Frame, Output
from qvp_client.http import RetryPolicy

__all__ = [
    "BarsWritten",
    "BatchRefused",
    "Client",
    "Forbidden",
    "Frame",
    "NotAcceptable",
    "NotFound",
    "Output",
    "Problem",
    "QvpError",
    "Recommendation",
    "Refused",
    "RetryPolicy",
    "ServerError",
    "SignalsWritten",
    "SimilarRegimes",
    "Throttled",
    "Unauthorized",
    "Unavailable",
    "VaR",
    "__version__",
]
