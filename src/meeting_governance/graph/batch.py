"""JSON batching: up to 20 GET requests in one `POST /$batch`, each answered on its own.

Microsoft Graph answers a batch with one response per request, in any order, each with its own
status, headers and body. A throttled or unavailable request inside a batch (429/503/504, with
its own `Retry-After`) is sent again in a later batch, up to `graph.max_retries` times; any
other error is handed back as that request's answer for the caller to judge (a 404 for a user
is "not in the directory", not a failure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meeting_governance.errors import GraphError
from meeting_governance.graph.client import RETRY_STATUSES, GraphClient, parse_retry_after

MAX_BATCH = 20  # Graph's limit on requests per $batch


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One GET inside a batch: `url` relative to the version root (`/users/…`)."""

    id: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    id: str
    status: int
    body: dict[str, Any]
    code: str | None = None  # Graph's error code, when the body is an error

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _answer(raw: Any) -> tuple[BatchAnswer, float | None] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        return None
    status = raw.get("status")
    if not isinstance(status, int):
        return None
    raw_body, raw_headers = raw.get("body"), raw.get("headers")
    body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
    failed = not 200 <= status < 300  # only an error answer's body is an error object
    raw_error = body.get("error") if failed else None
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    headers: dict[str, Any] = raw_headers if isinstance(raw_headers, dict) else {}
    retry_after = next((parse_retry_after(str(v)) for k, v in headers.items()
                        if str(k).lower() == "retry-after"), None)
    code = error.get("code") if isinstance(error.get("code"), str) else None
    return BatchAnswer(raw["id"], status, body, code), retry_after


def batch_get(client: GraphClient, requests: Sequence[BatchRequest], *,
              kind: str = "batch") -> dict[str, BatchAnswer]:
    """Send `requests` in batches of 20; every request gets an answer or GraphError is raised.

    Raises a retryable GraphError when Graph keeps throttling a request past the retry budget,
    or answers a batch without a response for one of its requests: callers fail closed.
    """
    pending = {r.id: r for r in requests}
    if len(pending) != len(requests):
        raise ValueError("batch request ids must be unique")
    answers: dict[str, BatchAnswer] = {}
    attempt = 0
    while pending:
        waits: list[float] = []
        throttled: list[BatchAnswer] = []
        queue = list(pending.values())
        for start in range(0, len(queue), MAX_BATCH):
            chunk = queue[start:start + MAX_BATCH]
            payload = {"requests": [
                {"id": r.id, "method": "GET", "url": r.url,
                 **({"headers": dict(r.headers)} if r.headers else {})} for r in chunk]}
            body = client.post_json(f"{client.base_url}/$batch", payload, kind=kind)
            raw = body.get("responses")
            if not isinstance(raw, list):
                raise GraphError(f"Graph answered a {kind} call without a responses list; "
                                 "retry later", code="malformed_response", retryable=True)
            seen = set()
            for item in raw:
                parsed = _answer(item)
                if parsed is None or parsed[0].id not in pending or parsed[0].id in seen:
                    continue
                answer, retry_after = parsed
                seen.add(answer.id)
                if answer.status in RETRY_STATUSES:
                    throttled.append(answer)
                    waits.append(retry_after if retry_after is not None else -1.0)
                    continue
                answers[answer.id] = answer
                del pending[answer.id]
            missing = [r.id for r in chunk if r.id not in seen]
            if missing:
                raise GraphError(f"Graph answered a {kind} call without a response for "
                                 f"{len(missing)} of its requests; retry later",
                                 code="malformed_response", retryable=True)
        if not pending:
            break
        if attempt >= client.settings.max_retries:
            last = throttled[-1] if throttled else None
            raise GraphError(
                f"Graph is throttling or unavailable for {len(pending)} {kind} request"
                f"{'s' if len(pending) != 1 else ''} after {attempt + 1} attempts "
                f"(HTTP {last.status if last else '?'}{' ' + last.code if last and last.code else ''}); "
                "retry later", status=last.status if last else None,
                code=last.code if last else None, retryable=True)
        longest = max(waits, default=-1.0)
        delay = (min(client.settings.max_retry_after_s, longest) if longest >= 0
                 else None)
        if delay is None:
            client.pause(attempt)
        else:
            client.sleep_for(delay)
        attempt += 1
    return answers
