"""An example API in Python behind keyhub's authorizer.

Nothing of keyhub's is imported here: this is what a user's own Lambda
function looks like. API Gateway has already run the authorizer, which
checked the key and the route's scope; the key's identity arrives in the
event's request context, as flat strings.
"""

import json
import os

# Counted per execution environment: a warm Lambda keeps this module (and
# this counter) between invocations, a cold start begins again at zero.
_invocations = 0


def handler(event, context):
    global _invocations
    _invocations += 1

    # The three lines a handler needs to know who is calling.
    authorizer = event["requestContext"]["authorizer"]
    key_id, account_id, plan = authorizer["key_id"], authorizer["account_id"], authorizer["plan"]
    scopes = authorizer["scopes"].split()

    body = {
        "message": "hello from a Python function keyhub protects",
        "method": event["httpMethod"],
        "path": event["path"],
        "key_id": key_id,
        "account_id": account_id,
        "scopes": scopes,
        "plan": plan,
        "request_id": event["requestContext"]["requestId"],
        "aws_request_id": context.aws_request_id,
        # Which execution environment answered, and how often it has.
        "pid": os.getpid(),
        "invocations": _invocations,
    }
    if event["httpMethod"] == "POST":
        raw = event.get("body") or "null"
        try:
            body["received"] = json.loads(raw)
        except ValueError:
            return {
                "statusCode": 400,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"message": "the body is not JSON"}),
            }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"X-Served-By": ["python", "awslambdaric"]},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }
