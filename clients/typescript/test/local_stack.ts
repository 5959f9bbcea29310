/**
 * The TypeScript client against a running keyhub (tests/tests/api/clients.rs
 * starts one and runs the compiled build/test/local_stack.js with
 * KEYHUB_BASE_URL and KEYHUB_API_KEY):
 *
 *   local_stack.js lifecycle   create, list, rotate and delete a key
 *   local_stack.js ratelimit   KEYHUB_API_KEY is already at its per-minute
 *                              limit: no retry past the wait budget, then
 *                              one 429 retried after Retry-After
 *
 * Asserts what it can see and prints one JSON line for the Rust test to
 * check on the server's side. Exits non-zero on any failure.
 */
import assert from "node:assert/strict";

import { connect, rateLimit, type Retry } from "../src/index.js";

const baseUrl = process.env.KEYHUB_BASE_URL ?? assert.fail("KEYHUB_BASE_URL");
const apiKey = process.env.KEYHUB_API_KEY ?? assert.fail("KEYHUB_API_KEY");

async function lifecycle() {
  const keyhub = connect({ baseUrl, apiKey });

  const created = await keyhub.POST("/api/v1/api-keys", {
    body: { name: "typescript client", scopes: ["keys:read"] },
  });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  const key = created.data ?? assert.fail("no body");
  assert.match(key.key, /^kh_/);
  const limits = rateLimit(created.response) ?? assert.fail("no rate-limit headers");
  assert.ok(limits.limit > 0 && limits.remaining >= 0 && limits.remaining < limits.limit, JSON.stringify(limits));

  const listed = await keyhub.GET("/api/v1/api-keys", { params: { query: { size: 100 } } });
  assert.equal(listed.response.status, 200, JSON.stringify(listed.error));
  assert.ok(
    listed.data?.api_keys.some((k) => k.id === key.id),
    "the new key is not listed",
  );

  // The new key authenticates, by either header.
  for (const header of ["authorization", "x-api-key"] as const) {
    const me = await connect({ baseUrl, apiKey: key.key, header }).GET("/api/v1/whoami");
    assert.equal(me.response.status, 200, `${header}: ${JSON.stringify(me.error)}`);
    assert.equal(me.data?.key.id, key.id, header);
  }

  const rotated = await keyhub.POST("/api/v1/api-keys/{id}/rotate", {
    params: { path: { id: key.id } },
    body: { grace_period_seconds: 0 },
  });
  assert.equal(rotated.response.status, 201, JSON.stringify(rotated.error));
  const next = rotated.data ?? assert.fail("no body");
  assert.notEqual(next.id, key.id);
  assert.equal(next.previous_key.id, key.id);

  const deleted = await keyhub.DELETE("/api/v1/api-keys/{id}", { params: { path: { id: next.id } } });
  assert.equal(deleted.response.status, 200, JSON.stringify(deleted.error));

  return { created: key.id, created_key: key.key, rotated: next.id, rotated_key: next.key };
}

async function ratelimit() {
  // A budget shorter than the server's Retry-After: the 429 comes back at
  // once, headers and all.
  const retries: Retry[] = [];
  let started = performance.now();
  const refusedResp = await connect({
    baseUrl,
    apiKey,
    retry: { maxTotalWaitSeconds: 0.5, onRetry: (r) => retries.push(r) },
  }).GET("/api/v1/api-keys");
  const refusedAfter = (performance.now() - started) / 1000;
  assert.equal(refusedResp.response.status, 429, JSON.stringify(refusedResp.data));
  assert.equal(refusedResp.error?.error.code, "rate_limit_exceeded");
  assert.equal(retries.length, 0);
  assert.ok(refusedAfter < 0.5, String(refusedAfter));
  const retryAfter = Number(refusedResp.response.headers.get("retry-after"));
  const refused = rateLimit(refusedResp.response) ?? assert.fail("no rate-limit headers on the 429");
  assert.equal(refused.remaining, 0);
  assert.ok(refused.reset * 1000 >= Date.now(), JSON.stringify(refused));

  // The default policy waits Retry-After once and gets through.
  started = performance.now();
  const allowedResp = await connect({ baseUrl, apiKey, retry: { onRetry: (r) => retries.push(r) } }).GET(
    "/api/v1/api-keys",
  );
  const took = (performance.now() - started) / 1000;
  assert.equal(allowedResp.response.status, 200, JSON.stringify(allowedResp.error));
  assert.deepEqual(
    retries.map((r) => [r.attempt, r.status]),
    [[1, 429]],
  );
  const waited = retries[0]?.delaySeconds ?? assert.fail("no retry");
  assert.ok(took >= waited, `${took} < ${waited}`);
  const allowed = rateLimit(allowedResp.response) ?? assert.fail("no rate-limit headers");
  assert.ok(allowed.reset > refused.reset, JSON.stringify([allowed, refused]));

  return { retry_after: retryAfter, waited, took, limit: refused.limit, remaining_after: allowed.remaining };
}

const scenarios: Record<string, () => Promise<object>> = { lifecycle, ratelimit };
const scenario = scenarios[process.argv[2] ?? ""] ?? assert.fail(`unknown scenario ${process.argv[2]}`);
console.log(JSON.stringify(await scenario()));
