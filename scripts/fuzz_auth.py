"""make fuzz: schemathesis' key, kept working (a schemathesis hooks file).

schemathesis fuzzes every operation with one all-scope key, including
DELETE, PUT/PATCH (is_active, expires_at, scopes, rate_limits) and rotate of
the keys whose ids it has seen, its own among them (GET /api/v1/api-keys
lists it). Once it has revoked or narrowed its own key, every later request
is a 401, 403 or 429: each passes every check, and none tests anything.

This provider hands schemathesis the key and looks at it again every few
seconds and after any 401 (schemathesis then replays the request
once): if GET /api/v1/whoami no longer shows it with every scope and the
fuzz limits, a new all-scope key is made in the same account with
`keyhub-admin key`, so the resources the fuzzer made stay reachable (in a
new account they would answer 404, which schemathesis rightly reports for a
resource it just created). Each replacement is a line in FUZZ_KEYS_LOG.

Environment (set by scripts/fuzz.sh): FUZZ_BASE_URL, FUZZ_KEY_FILE (the
key; rewritten on replacement), FUZZ_ACCOUNT, FUZZ_STACK, FUZZ_ADMIN (the
keyhub-admin binary), FUZZ_KEYS_LOG, FUZZ_MIN_LIMIT (the least per-window
limit a working key has).
"""

import json
import os
import subprocess
import urllib.error
import urllib.request

import schemathesis

BASE = os.environ["FUZZ_BASE_URL"]
KEY_FILE = os.environ["FUZZ_KEY_FILE"]
ACCOUNT = os.environ["FUZZ_ACCOUNT"]
STACK = os.environ["FUZZ_STACK"]
ADMIN = os.environ["FUZZ_ADMIN"]
KEYS_LOG = os.environ["FUZZ_KEYS_LOG"]
MIN_LIMIT = int(os.environ["FUZZ_MIN_LIMIT"])


def usable(key):
    """Whether the key still answers whoami with every scope and limits the
    fuzzer cannot run into; why not otherwise."""
    request = urllib.request.Request(
        BASE + "/api/v1/whoami", headers={"Authorization": "Bearer " + key}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            me = json.load(response)
    except urllib.error.HTTPError as e:
        return False, "whoami answered %d" % e.code
    if me.get("scopes") != ["*"]:
        return False, "scopes are now %s" % me.get("scopes")
    windows = [w or {} for w in (me.get("limits") or {}).values()]
    if any(isinstance(v, int) and v < MIN_LIMIT for w in windows for v in w.values()):
        return False, "limits are now %s" % me.get("limits")
    return True, ""


def admin(*args):
    return subprocess.run(
        [ADMIN, *args, "--stack", STACK], capture_output=True, text=True, timeout=60
    )


def replace(why):
    """A new all-scope key in the fuzzer's account, written to KEY_FILE; in
    a new account if that one is at its key cap (all its keys kept but
    deactivated, say), rather than no key at all."""
    global ACCOUNT
    made = admin("key", "--account-id", ACCOUNT, "--key-name", "fuzzer")
    if made.returncode != 0:
        why += "; in a new account (%s)" % made.stderr.strip()
        made = admin("bootstrap", "--account-name", "fuzzer", "--key-name", "fuzzer")
        if made.returncode != 0:
            raise RuntimeError("keyhub-admin failed: " + made.stderr.strip())
        ACCOUNT = made.stderr.split()[1]
    key = made.stdout.strip()
    with open(KEY_FILE, "w") as f:
        f.write(key)
    with open(KEYS_LOG, "a") as f:
        f.write(why + "\n")
    return key


@schemathesis.auth(refresh_interval=3, retry_on=[401])
class FuzzerKey:
    def get(self, case, context):
        with open(KEY_FILE) as f:
            key = f.read().strip()
        ok, why = usable(key)
        return key if ok else replace(why)

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = "Bearer " + data
