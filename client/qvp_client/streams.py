"""Reading the API's Apache Arrow IPC stream as it arrives, counting its bytes."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from qvp_client import errors

ARROW_STREAM = "application/vnd.apache.arrow.stream"
# What pyarrow is handed at a time: large enough for few Python calls per batch.
BUFFER = 1 << 20


class _Counted(io.RawIOBase):
    """A response's body, decoded (gzip) and counted as it is read."""

    def __init__(self, raw: Any, counted: Callable[[int], None]) -> None:
        super().__init__()
        self._raw, self._counted = raw, counted

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data: bytes = self._raw.read(len(buffer), decode_content=True)
        size = len(data)
        buffer[:size] = data
        if size:
            self._counted(size)
        return size


def arrow_table(response: Any, counted: Callable[[int], None]) -> pa.Table:
    """The table of a response streamed in Arrow IPC (its body not yet read)."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    if kind != ARROW_STREAM:
        body = response.text[:200] if kind.endswith("json") else f"a body of {kind or 'no type'}"
        raise errors.NotAcceptable(
            f"GET {response.url}: answered {kind or 'no Content-Type'} rather than an Arrow"
            f" stream (does the server offer ?format=arrow here?): {body}",
            status=response.status_code,
            url=str(response.url),
        )
    source = io.BufferedReader(_Counted(response.raw, counted), buffer_size=BUFFER)
    try:
        with pa.ipc.open_stream(source) as reader:
            return reader.read_all()
    except (pa.ArrowInvalid, OSError) as error:
        raise errors.QvpError(
            f"GET {response.url}: the Arrow stream broke off or is not valid: {error}",
            status=response.status_code,
            url=str(response.url),
        ) from error
    finally:
        response.close()
