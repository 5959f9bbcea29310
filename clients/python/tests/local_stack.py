"""The Python client against a running keyhub (tests/tests/api/clients.rs
starts one and runs this with KEYHUB_BASE_URL and KEYHUB_API_KEY):

    local_stack.py lifecycle   create, list, rotate and delete a key
    local_stack.py ratelimit   KEYHUB_API_KEY is already at its per-minute
                               limit: no retry past the wait budget, then one
                               429 retried after Retry-After
    local_stack.py policy      the retry policy's other rules, against
                               answers made up here (no server)

Asserts what it can see and prints one JSON line for the Rust test to check
on the server's side. Exits non-zero on any failure.
"""

import json
import os
import sys
import time
from datetime import datetime, timezone

import httpx

from keyhub_api.api.default import (
    create_api_key,
    delete_api_key,
    list_api_keys,
    rotate_api_key,
    whoami,
)
from keyhub_api.models import ApiKeyList, CreateApiKey
from keyhub_api.models.rotate_api_key_body import RotateApiKeyBody
from keyhub_client import RetryPolicy, RetryTransport, connect, rate_limit, retry_after

BASE = os.environ.get("KEYHUB_BASE_URL", "")
KEY = os.environ.get("KEYHUB_API_KEY", "")


def lifecycle() -> dict:
    client = connect(BASE, KEY)

    created = create_api_key.sync_detailed(
        client=client, body=CreateApiKey(name="python client", scopes=["keys:read"])
    )
    assert created.status_code == 201, (created.status_code, created.content)
    key = created.parsed
    assert key.key.startswith("kh_"), key.key
    limits = rate_limit(created)
    assert limits is not None and limits.limit > 0 and 0 <= limits.remaining < limits.limit, limits

    listed = list_api_keys.sync_detailed(client=client, size=100)
    assert listed.status_code == 200, (listed.status_code, listed.content)
    assert isinstance(listed.parsed, ApiKeyList), listed.parsed
    assert key.id in [k.id for k in listed.parsed.api_keys], "the new key is not listed"

    # The new key authenticates, by either header.
    for header in ("authorization", "x-api-key"):
        me = whoami.sync_detailed(client=connect(BASE, key.key, header=header))
        assert me.status_code == 200, (header, me.status_code, me.content)
        assert me.parsed.key.id == key.id, (header, me.parsed)

    rotated = rotate_api_key.sync_detailed(
        key.id, client=client, body=RotateApiKeyBody(grace_period_seconds=0)
    )
    assert rotated.status_code == 201, (rotated.status_code, rotated.content)
    new = rotated.parsed
    assert new.id != key.id and new.previous_key.id == key.id, new

    deleted = delete_api_key.sync_detailed(new.id, client=client)
    assert deleted.status_code == 200, (deleted.status_code, deleted.content)

    return {"created": key.id, "created_key": key.key, "rotated": new.id, "rotated_key": new.key}


def ratelimit() -> dict:
    # A budget shorter than the server's Retry-After: the 429 comes back at
    # once, headers and all.
    retries = []
    started = time.monotonic()
    r = list_api_keys.sync_detailed(
        client=connect(BASE, KEY, retry=RetryPolicy(max_total_wait=0.5, on_retry=retries.append))
    )
    refused_after = time.monotonic() - started
    assert r.status_code == 429, (r.status_code, r.content)
    assert retries == [] and refused_after < 0.5, (retries, refused_after)
    retry_after = int(r.headers["retry-after"])
    refused = rate_limit(r)
    assert refused is not None and refused.remaining == 0, refused
    assert refused.reset >= time.time(), refused

    # The default policy waits Retry-After once and gets through.
    started = time.monotonic()
    r = list_api_keys.sync_detailed(client=connect(BASE, KEY, retry=RetryPolicy(on_retry=retries.append)))
    took = time.monotonic() - started
    assert r.status_code == 200, (r.status_code, r.content)
    assert [(x.attempt, x.status) for x in retries] == [(1, 429)], retries
    assert took >= retries[0].delay, (took, retries)
    allowed = rate_limit(r)
    assert allowed is not None and allowed.reset > refused.reset, (allowed, refused)

    return {
        "retry_after": retry_after,
        "waited": retries[0].delay,
        "took": took,
        "limit": refused.limit,
        "remaining_after": allowed.remaining,
    }


def policy() -> dict:
    def send(method: str, answers: list) -> tuple:
        """Sends one request through the retry transport to `answers`
        (status, headers), one per attempt; returns (final status, attempts)."""
        attempts = []

        def answer(request: httpx.Request) -> httpx.Response:
            attempts.append(request.content)
            status, headers = answers[min(len(attempts), len(answers)) - 1]
            return httpx.Response(status, headers=headers)

        transport = RetryTransport(RetryPolicy(), inner=httpx.MockTransport(answer))
        with httpx.Client(base_url="http://keyhub.invalid", transport=transport) as c:
            r = c.request(method, "/api/v1/api-keys", json={"name": "n"})
        # A retried request carries its body again.
        assert len(set(attempts)) == 1, attempts
        return r.status_code, len(attempts)

    now = {"Retry-After": "0"}
    # A 503 repeats an idempotent request, never a POST: the change may be made.
    assert send("GET", [(503, now), (200, {})]) == (200, 2)
    assert send("DELETE", [(503, now), (200, {})]) == (200, 2)
    assert send("POST", [(503, now), (201, {})]) == (503, 1)
    # A 429 repeats any method, at most three requests in all.
    assert send("POST", [(429, now), (201, {})]) == (201, 2)
    assert send("GET", [(429, now)]) == (429, 3)
    # No Retry-After, or another status: no retry.
    assert send("GET", [(429, {}), (200, {})]) == (429, 1)
    assert send("GET", [(500, now), (200, {})]) == (500, 1)
    # Retry-After as an HTTP date.
    at = datetime(2015, 10, 21, 7, 27, 30, tzinfo=timezone.utc)
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=at) == 30.0
    assert retry_after("soon") is None
    assert rate_limit(httpx.Response(200)) is None
    return {"ok": True}


if __name__ == "__main__":
    print(json.dumps({"lifecycle": lifecycle, "ratelimit": ratelimit, "policy": policy}[sys.argv[1]]()))
