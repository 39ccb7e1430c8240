"""Judge calls as batches: the OpenAI Batch API (half the price, results within its window) or, for a local judge
checkpoint, vLLM's offline batch runner (``python -m vllm.entrypoints.openai.run_batch``). Same JSONL both ways.

Why a state file: a batch can take hours, and the process that submitted it may be killed. Every id is written to
``judge_batches.json`` in the run (or pair) folder the moment it exists -- the uploaded file's, then the batch's
-- so the next run of the same command polls the same batch instead of paying for the work again:

1. ``custom_id`` of a request is a hash of its URL and body: the same work has the same id in every process.
2. Before anything is sent, batches an earlier process left unfinished are collected for the requests they hold
   (:func:`collect_pending`, in any mode). A process killed between creating a batch and storing its id finds it
   by its input file (``GET /v1/batches``) rather than creating another.
3. Output lines become results exactly like online answers; error-file lines (and non-200 responses) become
   error results, retried by a later re-judge like any failed request. Requests of an expired or cancelled batch
   that got no answer are submitted again (only those), up to ``batch_resubmits`` times.
4. A batch is marked consumed once all its results were handed on (and stored); consumed batches are history.

Judge options: ``batch_poll_s`` (seconds between polls, default 30), ``batch_window`` (default 24h),
``batch_max_requests`` (per batch, default 50000), ``batch_resubmits`` (default 2), ``batch_discount`` (the share
of the online price a batch pays, default 0.5), ``batch_args`` (extra run_batch arguments, a list).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Generator, Iterator, Optional

from ..backends.base import GenResult
from ..backends.openai.wire import read_body, sampling_body
from ..models import SamplingParams
from ..store import content_key, write_json_atomic
from .budget import dispatch_rounds
from .spec import JudgeError

#: the engine's JudgeClient (which imports this module): spec, workdir, budget, refused, log, open(), request()
JudgeClient = Any

STATE = "judge_batches.json"
LOCAL_DIR = "judge_batches"  #: input/output files of the local (vLLM) runner
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: error codes of requests a batch never ran (its window ran out, it was cancelled): submitted again
UNRUN_CODES = frozenset({"batch_expired", "batch_cancelled"})

Request = tuple[str, list[dict[str, str]], SamplingParams]
Line = tuple[str, str, dict[str, Any]]  #: (custom_id, request key, input line)


class BatchState:
    """``judge_batches.json``: every batch of this folder, rewritten atomically after each change."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / STATE
        self.entries: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                self.entries = list(json.loads(self.path.read_text(encoding="utf-8"))["batches"])
            except (ValueError, KeyError, TypeError) as e:
                raise JudgeError(f"{self.path}: not a batch state file sfteval can read ({e})") from None

    def save(self) -> None:
        write_json_atomic(self.path, {"schema_version": 1, "batches": self.entries})

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.entries.append(entry)
        self.save()
        return entry

    def unconsumed(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if not e.get("consumed")]


def _opt(client: JudgeClient, name: str, default: Any) -> Any:
    return client.spec.options.get(name, default)


# -- the two runners ------------------------------------------------------------------------------------------

class OpenAIBatches:
    """Batches through the judge server's Batch API (``/v1/files``, ``/v1/batches``)."""

    kind = "openai"

    def __init__(self, client: JudgeClient):
        self.client = client
        self.api = client.open().batch_api()  # type: ignore[attr-defined]

    def lines(self, requests: list[Request]) -> list[Line]:
        out = []
        for key, messages, sampling in requests:
            line = self.api.line("", self.client.request(key, messages, sampling))
            cid = content_key("judge-batch", line["url"], line["body"])
            out.append((cid, key, {**line, "custom_id": cid}))
        return out

    def submit(self, state: BatchState, lines: list[Line]) -> dict[str, Any]:
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for _, _, line in lines).encode("utf-8")
        cids = [cid for cid, _, _ in lines]
        name = f"sfteval-{state.path.parent.name}-{content_key(cids)[:12]}.jsonl"
        file = self.api.upload(name, data)
        entry = state.add({"id": uuid.uuid4().hex[:12], "kind": self.kind, "file_id": file["id"], "batch_id": None,
                           "endpoint": lines[0][2]["url"], "custom_ids": cids, "status": "uploaded",
                           "consumed": False, "submitted_at": _now()})
        return self._create(state, entry)

    def _create(self, state: BatchState, entry: dict[str, Any]) -> dict[str, Any]:
        window = str(_opt(self.client, "batch_window", "24h"))
        batch = self.api.create(entry["file_id"], entry["endpoint"], window,
                                {"sfteval_folder": state.path.parent.name, "sfteval_entry": entry["id"]})
        entry.update(batch_id=batch["id"], status=batch.get("status") or "validating")
        state.save()
        self.client.log(f"batch {batch['id']}: {len(entry['custom_ids'])} judge requests submitted "
                        f"(file {entry['file_id']}); results come within {window}")
        return entry

    def poll(self, state: BatchState, entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("batch_id") is None:  # killed between creating the batch and storing its id
            found = self.api.find(entry["file_id"])
            if found is None:
                return self._create(state, entry)
            entry["batch_id"] = found["id"]
            self.client.log(f"batch {found['id']}: found by its input file {entry['file_id']}; not submitted again")
        b = self.api.retrieve(entry["batch_id"])
        entry.update(status=b.get("status"), output_file_id=b.get("output_file_id"),
                     error_file_id=b.get("error_file_id"), request_counts=b.get("request_counts"),
                     errors=_batch_errors(b))
        state.save()
        return entry

    def outputs(self, entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for fid in (entry.get("output_file_id"), entry.get("error_file_id")):
            if fid:
                yield from _jsonl(self.api.content(fid).decode("utf-8"))


class VLLMBatches:
    """A local judge checkpoint through ``python -m vllm.entrypoints.openai.run_batch`` (same JSONL)."""

    kind = "vllm"

    def __init__(self, client: JudgeClient):
        self.client = client
        self.folder = Path(client.workdir or ".") / LOCAL_DIR  # type: ignore[arg-type]

    def lines(self, requests: list[Request]) -> list[Line]:
        out = []
        for key, messages, sampling in requests:
            body = {"model": self.client.spec.model, "messages": messages, **sampling_body(sampling)}
            cid = content_key("judge-batch", "/v1/chat/completions", body)
            out.append((cid, key, {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}))
        return out

    def submit(self, state: BatchState, lines: list[Line]) -> dict[str, Any]:
        self.folder.mkdir(parents=True, exist_ok=True)
        ident = uuid.uuid4().hex[:12]
        path = self.folder / f"{ident}.input.jsonl"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for _, _, line in lines), encoding="utf-8")
        return state.add({"id": ident, "kind": self.kind, "input": path.name, "output": f"{ident}.output.jsonl",
                          "custom_ids": [cid for cid, _, _ in lines], "status": "created", "consumed": False,
                          "submitted_at": _now()})

    def command(self, entry: dict[str, Any]) -> list[str]:
        o = self.client.spec.options
        cmd = [str(o.get("python") or sys.executable), "-m", "vllm.entrypoints.openai.run_batch",
               "-i", str(self.folder / entry["input"]), "-o", str(self.folder / entry["output"]),
               "--model", self.client.spec.model, "--generation-config", "vllm"]
        flags = {"dtype": "--dtype", "max_model_len": "--max-model-len", "max_num_seqs": "--max-num-seqs",
                 "tensor_parallel_size": "--tensor-parallel-size", "gpu_memory_utilization": "--gpu-memory-utilization"}
        cmd += [x for k, flag in flags.items() if o.get(k) is not None for x in (flag, str(o[k]))]
        cmd += [flag for k, flag in (("enforce_eager", "--enforce-eager"), ("trust_remote_code", "--trust-remote-code"))
                if o.get(k)]
        return cmd + [str(a) for a in (o.get("batch_args") or [])]

    def poll(self, state: BatchState, entry: dict[str, Any]) -> dict[str, Any]:
        out = self.folder / entry["output"]
        if not (out.exists() and len(list(_jsonl(out.read_text(encoding="utf-8")))) >= len(entry["custom_ids"])):
            log = self.folder / f"{entry['id']}.log"
            self.client.log(f"vLLM batch runner: {len(entry['custom_ids'])} judge requests ({log})")
            with open(log, "wb") as f:
                proc = subprocess.run(self.command(entry), stdout=f, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                tail = log.read_text(errors="replace")[-1500:]
                raise JudgeError(f"the vLLM batch runner exited with {proc.returncode} (log {log}):\n{tail}")
        entry["status"] = "completed"
        state.save()
        return entry

    def outputs(self, entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from _jsonl((self.folder / entry["output"]).read_text(encoding="utf-8"))


RUNNERS = {"openai": OpenAIBatches, "vllm": VLLMBatches}


def runner_for(client: JudgeClient, kind: Optional[str] = None) -> Any:
    kind = kind or client.spec.backend
    if kind not in RUNNERS:
        raise JudgeError(f"--judge-mode batch needs the openai judge backend (the Batch API) or vllm (its offline "
                         f"batch runner), not {kind}")
    return RUNNERS[kind](client)


# -- driving batches ----------------------------------------------------------------------------------------

def run_batches(client: JudgeClient, requests: list[Request]) -> Iterator[GenResult]:
    """Submit the requests the budget admits (each at its worst case) as batches, wait, yield their results."""
    if client.workdir is None:
        raise JudgeError("--judge-mode batch needs a run folder to keep its batch ids in")
    yield from dispatch_rounds(requests, client.budget, lambda r: r[0], lambda admitted: _submit_all(client, admitted),
                               lambda r: client.worst_cost(r[1], r[2]), client.refused)


def _submit_all(client: JudgeClient, admitted_iter: Any) -> Iterator[GenResult]:
    """One round: every admitted request in batches (each reserved at its worst case), waited for, collected."""
    admitted = list(admitted_iter)
    if not admitted:
        return
    runner = runner_for(client)
    lines = runner.lines(admitted)
    state = BatchState(client.workdir)
    keys = {cid: key for cid, key, _ in lines}
    size = int(_opt(client, "batch_max_requests", 50_000))
    todo = lines
    for attempt in range(1 + int(_opt(client, "batch_resubmits", 2))):
        entries = [runner.submit(state, todo[i:i + size]) for i in range(0, len(todo), size)]
        missing = yield from _collect(client, runner, state, entries, keys)
        if not missing:
            return
        todo = [line for line in lines if line[0] in missing]
        client.log(f"note: {len(missing)} judge requests of an expired or cancelled batch are submitted again")
    for cid in sorted(missing):
        yield GenResult(key=keys[cid], error="the batch expired or was cancelled before this request ran "
                                             "(submitted again up to batch_resubmits times)", usage={"mode": "batch"})


def collect_pending(client: JudgeClient, requests: list[Request]) -> Generator[GenResult, None, list[Request]]:
    """Results for ``requests`` from batches an earlier process submitted; returns the requests still to send."""
    assert client.workdir is not None
    state = BatchState(client.workdir)
    open_entries = state.unconsumed()
    if not open_entries or not requests:
        return requests
    done: set[str] = set()
    for kind in sorted({e.get("kind", "openai") for e in open_entries}):
        if kind != client.spec.backend:
            continue  # a batch of another judge backend cannot hold this judge's work
        runner = runner_for(client, kind)
        lines = runner.lines(requests)
        keys = {cid: key for cid, key, _ in lines}
        entries = [e for e in open_entries if e.get("kind", "openai") == kind and set(e["custom_ids"]) & keys.keys()]
        if not entries:
            continue
        client.log(f"collecting {len(entries)} batch(es) submitted earlier for this work: "
                   + ", ".join(str(e.get("batch_id") or e["id"]) for e in entries))
        missing = yield from _collect(client, runner, state, entries, keys)
        done |= {keys[c] for e in entries for c in e["custom_ids"] if c in keys and c not in missing}
    return [r for r in requests if r[0] not in done]


def _collect(client: JudgeClient, runner: Any, state: BatchState, entries: list[dict[str, Any]],
             keys: dict[str, str]) -> Generator[GenResult, None, set[str]]:
    """Wait for the batches, yield a result per wanted request in them; the wanted ones no batch ran."""
    poll_s = float(_opt(client, "batch_poll_s", 30))
    waiting = list(entries)
    shown: dict[str, str] = {}
    missing: set[str] = set()
    while waiting:
        for e in list(waiting):
            runner.poll(state, e)
            seen = f"{e.get('status')} {e.get('request_counts') or ''}"
            if shown.get(e["id"]) != seen:
                shown[e["id"]] = seen
                client.log(f"batch {e.get('batch_id') or e['id']}: {seen.strip()}")
            if e.get("status") in TERMINAL:
                waiting.remove(e)
                missing |= yield from _results(client, runner, state, e, keys)
        if waiting:
            time.sleep(poll_s)
    return missing


def _results(client: JudgeClient, runner: Any, state: BatchState, entry: dict[str, Any],
             keys: dict[str, str]) -> Generator[GenResult, None, set[str]]:
    wanted = {c for c in entry["custom_ids"] if c in keys}
    batch_id = entry.get("batch_id") or entry["id"]
    answered: set[str] = set()
    unrun: set[str] = set()
    if entry.get("status") == "failed":  # the whole batch was refused (e.g. invalid input)
        reason = f"batch {batch_id} failed: {entry.get('errors') or 'no reason given'}"
        for cid in sorted(wanted):
            yield GenResult(key=keys[cid], error=reason, usage={"mode": "batch", "batch_id": batch_id})
        answered = wanted
    else:
        for line in runner.outputs(entry):
            cid = line.get("custom_id")
            if cid not in wanted or cid in answered:
                continue
            res = result_of(line, keys[cid], batch_id)
            if res is None:
                unrun.add(cid)
                continue
            answered.add(cid)
            yield res
    entry["consumed"] = True  # every result was handed on (and stored by the caller)
    state.save()
    return (wanted - answered) | unrun


def result_of(line: dict[str, Any], key: str, batch_id: str) -> Optional[GenResult]:
    """A batch output or error line as a result; None for a request the batch never ran (expired, cancelled)."""
    usage = {"mode": "batch", "batch_id": batch_id}
    resp = line.get("response") or {}
    error, status, body = line.get("error"), resp.get("status_code"), resp.get("body")
    if isinstance(error, dict) and error.get("code") in UNRUN_CODES:
        return None
    if error or status != 200 or not isinstance(body, dict):
        return GenResult(key=key, error=f"batch {batch_id}: HTTP {status}: {_message(error, body)}", usage=usage)
    try:
        got = read_body(body, chat=str(body.get("object", "chat")).startswith("chat"))
    except ValueError as e:
        return GenResult(key=key, error=f"batch {batch_id}: malformed response: {e}", usage=usage)
    return GenResult(key=key, text=got.text, reasoning=got.reasoning or None, prompt_tokens=got.prompt_tokens,
                     completion_tokens=got.completion_tokens, finish_reason=got.finish_reason, usage=usage)


def _message(error: Any, body: Any) -> str:
    for source in (error, body):
        if isinstance(source, dict):
            inner = source.get("error") if isinstance(source.get("error"), dict) else source
            if inner.get("message"):
                return str(inner["message"])[:500]
        elif source:
            return str(source)[:500]
    return "no response"


def _batch_errors(batch: dict[str, Any]) -> Optional[str]:
    errors = batch.get("errors") or {}
    data = errors.get("data") if isinstance(errors, dict) else None
    if not data:
        return None
    return "; ".join(f"{d.get('code')}: {d.get('message')}" + (f" (line {d['line']})" if d.get("line") else "")
                     for d in data[:5])


def _jsonl(text: str) -> Iterator[dict[str, Any]]:
    for raw in text.splitlines():
        if raw.strip():
            yield json.loads(raw)


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
