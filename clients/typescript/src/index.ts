/**
 * keyhub's TypeScript client: openapi-fetch over `paths`, the types
 * openapi-typescript generates from openapi.yaml (src/schema.d.ts, written
 * by scripts/clients.sh), plus the two things a generator does not write:
 * retries that honour `Retry-After`, and the rate-limit headers.
 *
 *   const keyhub = connect({ baseUrl: "http://127.0.0.1:3000", apiKey });
 *   const { data, error, response } = await keyhub.GET("/api/v1/api-keys");
 *   console.log(rateLimit(response));
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths };

/** One retry the policy made: what was answered and how long it waited. */
export interface Retry {
  attempt: number;
  status: number;
  delaySeconds: number;
}

/**
 * Retries of 429 and 503 after the `Retry-After` the server sent, bounded
 * twice: at most `maxAttempts` requests in all and `maxTotalWaitSeconds` of
 * waiting. A `Retry-After` past the budget (or none) returns the response
 * at once, so the caller sees the 429 and its headers instead of a hang.
 */
export interface RetryPolicy {
  maxAttempts?: number;
  maxTotalWaitSeconds?: number;
  onRetry?: (retry: Retry) => void;
}

/**
 * Methods a 503 may repeat: a 503 can come after the change was made (the
 * store answered late), so only a request safe to send twice goes again. A
 * 429 is refused before anything is done, so every method retries.
 */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** `Retry-After` in seconds: delay-seconds or an HTTP date (RFC 9110). */
export function retryAfterSeconds(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const when = Date.parse(v);
  return Number.isNaN(when) ? undefined : Math.max(0, (when - now) / 1000);
}

/** A `fetch` that sends a request again while `policy` says so. */
export function retryingFetch(
  policy: RetryPolicy = {},
  inner: (input: Request) => Promise<Response> = (r) => globalThis.fetch(r),
): (input: Request) => Promise<Response> {
  const maxAttempts = policy.maxAttempts ?? 3;
  const maxWait = policy.maxTotalWaitSeconds ?? 60;
  return async (request: Request) => {
    let waited = 0;
    for (let attempt = 1; ; attempt++) {
      // A body can be read once: each attempt sends a copy.
      const response = await inner(request.clone());
      const retryable =
        response.status === 429 || (response.status === 503 && IDEMPOTENT.has(request.method.toUpperCase()));
      const delay = retryable ? retryAfterSeconds(response.headers.get("retry-after")) : undefined;
      if (attempt >= maxAttempts || delay === undefined || waited + delay > maxWait) {
        return response;
      }
      await response.body?.cancel();
      policy.onRetry?.({ attempt, status: response.status, delaySeconds: delay });
      await new Promise((resolve) => setTimeout(resolve, delay * 1000));
      waited += delay;
    }
  };
}

/** The `X-RateLimit-*` headers of one response (Unix seconds for `reset`). */
export interface RateLimit {
  limit: number;
  remaining: number;
  reset: number;
}

/** The rate-limit headers of a response, or undefined when it has none. */
export function rateLimit(response: Response): RateLimit | undefined {
  const read = (name: string) => {
    const v = response.headers.get(name);
    return v !== null && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  const limit = read("x-ratelimit-limit");
  const remaining = read("x-ratelimit-remaining");
  const reset = read("x-ratelimit-reset");
  return limit === undefined || remaining === undefined || reset === undefined
    ? undefined
    : { limit, remaining, reset };
}

export interface ConnectOptions {
  baseUrl: string;
  apiKey: string;
  /** Which header carries the key (default `Authorization: Bearer`). */
  header?: "authorization" | "x-api-key";
  retry?: RetryPolicy;
}

/** An openapi-fetch client for keyhub with the key and the retry policy. */
export function connect(options: ConnectOptions): Client<paths> {
  const headers: Record<string, string> =
    options.header === "x-api-key" ? { "X-API-Key": options.apiKey } : { Authorization: `Bearer ${options.apiKey}` };
  return createClient<paths>({ baseUrl: options.baseUrl, headers, fetch: retryingFetch(options.retry) });
}
