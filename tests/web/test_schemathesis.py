"""schemathesis against the app's own OpenAPI schema: no generated request gets a 500.

The schema is read through a signed-in session (it is not public). For each operation,
schemathesis' Hypothesis strategy generates requests that are sent as a signed-in DPO with a
valid CSRF token, so they reach the handlers instead of stopping at sign-in or CSRF.
(schemathesis' own pytest plugin does not load under pytest 9, so its strategies are driven
directly.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from .conftest import Web


def _send(web: Web, case: Any) -> Any:
    client = web.signed_in("dpo")
    headers = {k: v for k, v in (case.headers or {}).items() if isinstance(v, str)}
    headers["X-CSRF-Token"] = web.token(client)
    kwargs: dict[str, Any] = {"params": case.query, "headers": headers}
    if case.body is not None and type(case.body).__name__ != "NotSet":
        kwargs["json"] = case.body
    return client.request(case.method, case.formatted_path, **kwargs)


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(web: Web) -> None:
    raw = web.signed_in("dpo").get("/api/openapi.json")
    assert raw.status_code == 200
    schema = schemathesis.openapi.from_dict(raw.json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 4  # list, add, get, revoke (and more)
    failures: list[str] = []
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def exercise(case: Any) -> None:
            response = _send(web, case)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
            assert response.status_code < 500

        exercise()
    assert failures == []
    # The requests really reached the handlers: some succeeded, some were rejected as invalid.
    assert len(statuses) >= 5 * len(operations)
    assert any(200 <= s < 300 for s in statuses) and any(s in (404, 422) for s in statuses)
