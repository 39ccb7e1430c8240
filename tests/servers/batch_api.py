"""The OpenAI Batch API on the loopback server: ``/v1/files`` (multipart upload, content download) and
``/v1/batches`` (create, retrieve, list, cancel), speaking the real protocol over real HTTP.

A stand-in only because the paid API cannot be reached from tests. Each line of an uploaded JSONL is answered by
the same handler that answers online requests, so a batch answer equals the online one. Knobs make it behave like
the real service: a batch is ``validating`` then ``in_progress`` for ``polls`` retrievals before it finalises;
``fail(body)`` decides per request whether it lands in the error file; ``expire_next`` makes the next batch expire
after answering that many requests (the rest get ``batch_expired`` lines, as OpenAI writes them). Every created
batch is kept in ``batches`` (with its custom ids), every answered custom id in ``answered``.

    api = BatchAPI(ScriptedJudge())
    with OpenAIServer(api, models=("judge",)) as srv: ...
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Callable, Optional

from .protocol import Answer, Reply, Request, as_reply, error_body, full_body


@dataclass
class BatchAPI:
    """A handler for OpenAIServer: Batch API routes here, anything else to ``online`` (the same judge)."""

    online: Callable[[Request], Any]
    polls: int = 2  #: retrievals in progress before a batch completes
    fail: Callable[[dict[str, Any]], Optional[str]] = lambda body: None  #: an error message puts a line in errors
    expire_next: Optional[int] = None  #: the next batch expires after answering this many requests
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)  #: custom ids answered (any batch), in order
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _n: int = 0

    def __call__(self, req: Request) -> Any:
        parts = [p for p in req.path.split("/") if p][1:]  # drop "v1"
        with self._lock:
            if parts[:1] == ["files"]:
                return self._files(req, parts[1:])
            if parts[:1] == ["batches"]:
                return self._batches(req, parts[1:])
        return self.online(req)

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:04d}"

    # -- files -----------------------------------------------------------------------------------------
    def _files(self, req: Request, rest: list[str]) -> Any:
        if req.method == "POST" and not rest:
            form = _multipart(req)
            if form.get("purpose") != b"batch" or "file" not in form:
                return Reply(400, error_body("purpose must be batch and a file must be given", "invalid_request_error"))
            return self._store(form["file"], "batch", form.get("filename", b"upload.jsonl").decode())
        fid = rest[0] if rest else ""
        if fid not in self.files:
            return Reply(404, error_body(f"No such File object: {fid}", "invalid_request_error", 404))
        if rest[1:] == ["content"]:
            return Reply(200, self.contents[fid], {"Content-Type": "application/octet-stream"})
        return self.files[fid]

    def _store(self, data: bytes, purpose: str, name: str) -> dict[str, Any]:
        fid = self._id("file")
        self.contents[fid] = data
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                           "filename": name, "purpose": purpose, "status": "processed"}
        return self.files[fid]

    # -- batches ---------------------------------------------------------------------------------------
    def _batches(self, req: Request, rest: list[str]) -> Any:
        if req.method == "POST" and not rest:
            return self._create(req.body or {})
        if req.method == "GET" and not rest:
            newest = sorted(self.batches.values(), key=lambda b: b["seq"], reverse=True)
            data = [self._public(b) for b in newest]
            return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None, "has_more": False}
        b = self.batches.get(rest[0])
        if b is None:
            return Reply(404, error_body(f"No such Batch: {rest[0]}", "invalid_request_error", 404))
        if rest[1:] == ["cancel"] and req.method == "POST":
            b["cancel"] = True
            b["status"] = "cancelling"
            return self._public(b)
        self._advance(b)
        return self._public(b)

    def _create(self, body: dict[str, Any]) -> Any:
        fid = body.get("input_file_id")
        if fid not in self.files:
            return Reply(400, error_body(f"input_file_id {fid} not found", "invalid_request_error"))
        lines = [json.loads(x) for x in self.contents[fid].decode().splitlines() if x.strip()]
        bid = self._id("batch")
        self.batches[bid] = {"id": bid, "seq": self._n, "input_file_id": fid, "endpoint": body.get("endpoint"),
                             "completion_window": body.get("completion_window"), "metadata": body.get("metadata"),
                             "lines": lines, "custom_ids": [x["custom_id"] for x in lines], "status": "validating",
                             "polled": 0, "expire_after": self.expire_next, "created_at": int(time.time())}
        self.expire_next = None
        return self._public(self.batches[bid])

    def _advance(self, b: dict[str, Any]) -> None:
        if b["status"] in ("completed", "expired", "cancelled", "failed"):
            return
        b["polled"] += 1
        if b.get("cancel"):
            self._finish(b, "cancelled", limit=0)
        elif b["polled"] <= self.polls:
            b["status"] = "in_progress"
        else:
            expire = b["expire_after"]
            self._finish(b, "completed" if expire is None else "expired", limit=expire)

    def _finish(self, b: dict[str, Any], status: str, limit: Optional[int]) -> None:
        out, err = [], []
        for i, line in enumerate(b["lines"]):
            cid = line["custom_id"]
            if limit is not None and i >= limit:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                err.append({"id": f"req-{cid}", "custom_id": cid, "response": None,
                            "error": {"code": code, "message": "This request could not be executed before the "
                                                               "completion window expired." if code == "batch_expired"
                                      else "The batch was cancelled."}})
                continue
            self.answered.append(cid)
            message = self.fail(line["body"])
            if message:
                err.append({"id": f"req-{cid}", "custom_id": cid, "error": None, "response": {
                    "status_code": 500, "request_id": f"r-{cid}", "body": error_body(message, "server_error", 500)}})
                continue
            fake = Request("POST", line["url"], {}, b"", line["body"], 0, 1, time.monotonic())
            answer = as_reply(self.online(fake))
            assert isinstance(answer, Answer), "batch lines are answered by a text-producing handler"
            out.append({"id": f"req-{cid}", "custom_id": cid, "error": None, "response": {
                "status_code": 200, "request_id": f"r-{cid}", "body": full_body(fake, answer)}})
        b["status"] = status
        b["output_file_id"] = self._store(_jsonl(out), "batch_output", "output.jsonl")["id"] if out else None
        b["error_file_id"] = self._store(_jsonl(err), "batch_output", "errors.jsonl")["id"] if err else None
        b["request_counts"] = {"total": len(b["lines"]), "completed": len(out), "failed": len(err)}

    def _public(self, b: dict[str, Any]) -> dict[str, Any]:
        return {"id": b["id"], "object": "batch", "endpoint": b["endpoint"], "errors": None,
                "input_file_id": b["input_file_id"], "completion_window": b["completion_window"],
                "status": b["status"], "output_file_id": b.get("output_file_id"),
                "error_file_id": b.get("error_file_id"), "created_at": b["created_at"], "metadata": b["metadata"],
                "request_counts": b.get("request_counts") or {"total": len(b["lines"]), "completed": 0, "failed": 0}}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _multipart(req: Request) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (the file's own name under ``filename``)."""
    head = f"Content-Type: {req.headers.get('content-type', '')}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + req.raw)
    out: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[str(name)] = part.get_payload(decode=True) or b""
        if part.get_filename():
            out["filename"] = part.get_filename().encode()
    return out
