/**
 * The TypeScript client against a running keyhub (tests/tests/api/clients.rs
 * starts one and runs the compiled build/test/local_stack.js with
 * KEYHUB_BASE_URL and KEYHUB_API_KEY):
 *
 *   local_stack.js lifecycle   create, list, rotate and delete a key
 *   local_stack.js ratelimit   KEYHUB_API_KEY is already at its per-minute
 *                              limit: no retry past the wait budget, then
 *                              one 429 retried after Retry-After
 *   local_stack.js policy      the retry policy's other rules, against
 *                              answers made up here (no server)
 *
 * Asserts what it can see and prints one JSON line for the Rust test to
 * check on the server's side. Exits non-zero on any failure.
 */
import assert from "node:assert/strict";

import { connect, rateLimit, retryAfterSeconds, retryingFetch, type Retry } from "../src/index.js";

const baseUrl = process.env.KEYHUB_BASE_URL ?? "";
const apiKey = process.env.KEYHUB_API_KEY ?? "";

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

async function policy() {
  /** One request through the retrying fetch to `answers` (status, headers),
   * one per attempt: the final status and the number of attempts. */
  async function send(method: string, answers: [number, Record<string, string>][]) {
    const bodies: string[] = [];
    const fetch = retryingFetch({}, async (request) => {
      bodies.push(await request.text());
      const [status, headers] = answers[Math.min(bodies.length, answers.length) - 1] ?? assert.fail();
      return new Response(null, { status, headers });
    });
    const body = method === "GET" || method === "DELETE" ? null : JSON.stringify({ name: "n" });
    const r = await fetch(new Request("http://keyhub.invalid/api/v1/api-keys", { method, body }));
    // A retried request carries its body again.
    assert.equal(new Set(bodies).size, 1, JSON.stringify(bodies));
    return [r.status, bodies.length];
  }
  const now = { "Retry-After": "0" };
  // A 503 repeats an idempotent request, never a POST: the change may be made.
  assert.deepEqual(await send("GET", [[503, now], [200, {}]]), [200, 2]);
  assert.deepEqual(await send("DELETE", [[503, now], [200, {}]]), [200, 2]);
  assert.deepEqual(await send("POST", [[503, now], [201, {}]]), [503, 1]);
  // A 429 repeats any method, at most three requests in all.
  assert.deepEqual(await send("POST", [[429, now], [201, {}]]), [201, 2]);
  assert.deepEqual(await send("GET", [[429, now]]), [429, 3]);
  // No Retry-After, or another status: no retry.
  assert.deepEqual(await send("GET", [[429, {}], [200, {}]]), [429, 1]);
  assert.deepEqual(await send("GET", [[500, now], [200, {}]]), [500, 1]);
  // Retry-After as an HTTP date.
  assert.equal(retryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT", Date.UTC(2015, 9, 21, 7, 27, 30)), 30);
  assert.equal(retryAfterSeconds("soon"), undefined);
  assert.equal(rateLimit(new Response(null)), undefined);
  return { ok: true };
}

const scenarios: Record<string, () => Promise<object>> = { lifecycle, ratelimit, policy };
const scenario = scenarios[process.argv[2] ?? ""] ?? assert.fail(`unknown scenario ${process.argv[2]}`);
console.log(JSON.stringify(await scenario()));
