"""The OpenAI Batch API on an :class:`OpenAIBackend`: upload a JSONL file, create a batch, poll it, download results.

Why on the backend: it owns the HTTP client, the API key, the base URL and the retry policy, so batch calls are
retried (429, 5xx, Retry-After) like any request and the key is never written anywhere. Each method is one API
call, synchronous for the caller; the judge's batch driver (``harness.judging.batch``) decides what to call.
Request bodies are built by the same code as online requests (:meth:`OpenAIBackend.request_body`), so a batch
asks exactly what the online path would.
"""

from __future__ import annotations

from typing import Any, Optional

from ..base import BackendError, GenRequest
from .retry import scrub

#: batch statuses after which nothing changes
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchAPI:
    """``/v1/files`` and ``/v1/batches`` of the backend's server."""

    def __init__(self, backend: Any):  # an OpenAIBackend (which imports this module)
        self.backend = backend

    def line(self, custom_id: str, req: GenRequest) -> dict[str, Any]:
        """One line of a batch input file: the body an online request would send (never streamed)."""
        path, body = self.backend.request_body(req, stream=False)
        return {"custom_id": custom_id, "method": "POST", "url": "/v1" + path, "body": body}

    def _call(self, what: str, make: Any) -> Any:
        b = self.backend
        value, error, _ = b._loop.run(b._with_retries(make))
        if error is not None:
            raise BackendError(scrub(f"batch API: {what} failed: {error}", b._key))
        return value

    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        """POST /v1/files (purpose batch); the file object (``id``)."""
        client = self._client()
        obj = self._call(f"uploading {name}", lambda: client.files.create(file=(name, data), purpose="batch"))
        return obj.model_dump()

    def create(self, input_file_id: str, endpoint: str, window: str, metadata: dict[str, str]) -> dict[str, Any]:
        """POST /v1/batches; the batch object (``id``, ``status``)."""
        client = self._client()
        obj = self._call(f"creating the batch of file {input_file_id}", lambda: client.batches.create(
            input_file_id=input_file_id, endpoint=endpoint, completion_window=window, metadata=metadata))
        return obj.model_dump()

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        client = self._client()
        return self._call(f"reading batch {batch_id}", lambda: client.batches.retrieve(batch_id)).model_dump()

    def cancel(self, batch_id: str) -> dict[str, Any]:
        client = self._client()
        return self._call(f"cancelling batch {batch_id}", lambda: client.batches.cancel(batch_id)).model_dump()

    def find(self, input_file_id: str, limit: int = 1000) -> Optional[dict[str, Any]]:
        """The batch created from ``input_file_id``, if any (a process killed right after creating it never
        learnt its id): GET /v1/batches, newest first, at most ``limit`` batches."""
        client = self._client()

        async def scan() -> Optional[dict[str, Any]]:
            seen = 0
            async for batch in client.batches.list(limit=100):
                if batch.input_file_id == input_file_id:
                    return batch.model_dump()
                seen += 1
                if seen >= limit:
                    break
            return None

        return self._call(f"looking for the batch of file {input_file_id}", scan)

    def content(self, file_id: str) -> bytes:
        """GET /v1/files/{id}/content."""
        client = self._client()

        async def read() -> bytes:
            response = await client.files.content(file_id)
            return response.content

        return self._call(f"downloading file {file_id}", read)

    def _client(self) -> Any:
        client = self.backend._client
        if client is None:
            raise BackendError("the openai backend is closed")
        return client
