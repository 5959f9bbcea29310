#!/usr/bin/env python3
"""Runs template.yaml through the real SAM transform (aws-sam-translator, the
code CloudFormation runs at deploy time) and resolves the result the way
CloudFormation would for one set of parameter values.

cfn-lint resolves conditions itself and passes templates the transform
refuses, so this is what tells whether the stack deploys.

  sam_transform.py [--template T] [--param NAME=VALUE ...]
      one parameter set (the defaults for the rest): the resolved template
      as JSON, or exit 1 with the transform's (or a Rules assertion's) words
  sam_transform.py [--template T] --matrix
      every combination of the parameters that change the template's shape
      (those the Conditions and Rules read), then EXTRA_SETS (parameters
      tried one at a time against the defaults): a JSON list of
      {"parameters", "extra", "refused", "error", "template"}
  sam_transform.py [--template T] --check
      the same combinations; prints what failed, exit 1 if the transform
      refused any combination that the Rules let through

"Resolved" means: the Rules evaluated, resources and outputs whose condition
is false removed, Fn::If and AWS::NoValue settled, Ref/Fn::Sub of
parameters and pseudo parameters replaced by their values, and Fn::Join and
Fn::Split of strings done. References to resources stay as they are (in a
joined or split string, as `${Resource}`).
"""

import argparse
import copy
import itertools
import json
import logging
import os
import re
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# The translator logs a warning about unpublished metrics for every run.
logging.basicConfig(level=logging.ERROR)

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# A value besides the default for each shape-changing parameter that has no
# AllowedValues; a new condition on another such parameter needs one here.
SAMPLES = {
    "AuthorizerIdentityHeader": "X-API-Key",
    "AuthorizerCacheTtl": "300",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:keyhub-alarms",
    "WafRateLimitPerIp": "2000",
    "AuthorizerCacheStages": "arn:aws:apigateway:us-east-1::/restapis/abc123/stages/prod,arn:aws:apigateway:eu-west-1::/restapis/def456/stages/v1",
}

# Parameters tried one set at a time against the product of the others
# rather than multiplied into it (each would double the matrix): every entry
# is one extra parameter set, the values it gives; the rest keep their
# defaults. Their parameters leave the product.
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
EXTRA_SETS = [
    {"CustomDomainName": "api.example.com", "CustomDomainCertificateArn": CERTIFICATE},
    {"CustomDomainName": "api.example.com", "CustomDomainCertificateArn": CERTIFICATE, "CustomDomainBasePath": "keyhub"},
    {"CustomDomainName": "api.example.com", "CustomDomainCertificateArn": CERTIFICATE, "CustomDomainHostedZoneId": "Z0123456789ABCDEFGHIJ"},
    # Refused by the Rules: a name without its certificate, settings without a name.
    {"CustomDomainName": "api.example.com"},
    {"CustomDomainBasePath": "keyhub"},
    {"WebhookEgressNatGateways": "1"},
    {"WebhookEgressNatGateways": "2"},
    # All of them at once, beside the example's API and the WAF.
    {
        "CustomDomainName": "api.example.com",
        "CustomDomainCertificateArn": CERTIFICATE,
        "CustomDomainBasePath": "keyhub",
        "CustomDomainHostedZoneId": "Z0123456789ABCDEFGHIJ",
        "WebhookEgressNatGateways": "2",
        "DeployExample": "true",
        "WafRateLimitPerIp": "2000",
    },
]
EXTRA_PARAMETERS = sorted({n for s in EXTRA_SETS for n in s} - {"DeployExample", "WafRateLimitPerIp"})

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "keyhub",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/keyhub/0",
}

NO_VALUE = object()


class Refused(Exception):
    """A Rules assertion failed: CloudFormation refuses the stack up front."""


class ManagedPolicies:
    """The transform asks for AWS managed policy ARNs only for policy names
    given without an ARN; keyhub's policies are all inline statements."""

    def load(self):
        return {}


def as_text(v):
    """CloudFormation compares parameter values as strings."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def text_of(node):
    """A settled string, or a Fn::Sub left with only resource references
    (`${ExampleApi}`), as its text; None for anything else."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and list(node) == ["Fn::Sub"] and isinstance(node["Fn::Sub"], str):
        return node["Fn::Sub"]
    return None


def refs_in(node, found):
    if isinstance(node, dict):
        if set(node) == {"Ref"} and isinstance(node["Ref"], str):
            found.add(node["Ref"])
        for v in node.values():
            refs_in(v, found)
    elif isinstance(node, list):
        for v in node:
            refs_in(v, found)
    return found


def shape_parameters(template):
    """The parameters the Conditions and Rules read, each with the values
    worth trying: its AllowedValues, or its default and a sample."""
    params = template.get("Parameters", {})
    names = refs_in([template.get("Conditions", {}), template.get("Rules", {})], set())
    out = {}
    for name in sorted(n for n in names if n in params and n not in EXTRA_PARAMETERS):
        p = params[name]
        if "AllowedValues" in p:
            out[name] = [as_text(v) for v in p["AllowedValues"]]
        elif name in SAMPLES:
            out[name] = [as_text(p.get("Default", "")), SAMPLES[name]]
        else:
            raise SystemExit(
                f"sam_transform.py: parameter {name} changes the template's shape; "
                "give it AllowedValues or a sample value in SAMPLES"
            )
    return out


def parameter_values(template, overrides):
    values = {n: as_text(p["Default"]) for n, p in template.get("Parameters", {}).items() if "Default" in p}
    values.update(overrides)
    missing = [n for n in template.get("Parameters", {}) if n not in values]
    if missing:
        raise SystemExit(f"sam_transform.py: no value for {', '.join(missing)}")
    return values


class Resolver:
    def __init__(self, template, values):
        self.values = dict(PSEUDO, **values)
        self.conditions_src = template.get("Conditions", {})
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.conditions_src[name])
        return self.conditions[name]

    def scalar(self, node):
        node = self.value(node)
        if node is NO_VALUE or isinstance(node, (dict, list)):
            raise ValueError(f"cannot compare {node!r}")
        return as_text(node)

    def truth(self, node):
        """A condition or rule expression."""
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            return self.scalar(args[0]) == self.scalar(args[1])
        if fn == "Fn::Not":
            return not self.truth(args[0])
        if fn == "Fn::And":
            return all(self.truth(a) for a in args)
        if fn == "Fn::Or":
            return any(self.truth(a) for a in args)
        if fn == "Condition":
            return self.condition(args)
        if fn == "Fn::Contains":
            return self.scalar(args[1]) in [self.scalar(v) for v in self.value(args[0])]
        raise ValueError(f"sam_transform.py cannot evaluate {fn}")

    def sub(self, text, variables):
        """Substitutes the variables that are known strings; the rest stay."""

        def one(m):
            name = m.group(1)
            value = variables.get(name, self.values.get(name))
            return as_text(value) if isinstance(value, (str, int, float)) else m.group(0)

        return re.sub(r"\$\{([^!}][^}]*)\}", one, text)

    def value(self, node):
        """Settles Fn::If, AWS::NoValue and parameter references."""
        if isinstance(node, list):
            items = [self.value(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, args), = node.items()
            if fn == "Ref" and args == "AWS::NoValue":
                return NO_VALUE
            if fn == "Ref" and args in self.values:
                return self.values[args]
            if fn == "Fn::If":
                return self.value(args[1] if self.condition(args[0]) else args[2])
            if fn == "Fn::Join":
                items = self.value(args[1])
                texts = [text_of(v) for v in items] if isinstance(items, list) else [None]
                if all(t is not None for t in texts):
                    return args[0].join(texts)
                return {"Fn::Join": [args[0], items]}
            if fn == "Fn::Split":
                source = self.value(args[1])
                text = text_of(source)
                return text.split(args[0]) if text is not None else {"Fn::Split": [args[0], source]}
            if fn == "Fn::Sub":
                text, variables = (args, {}) if isinstance(args, str) else (args[0], self.value(args[1]))
                text = self.sub(text, variables)
                left = {k: v for k, v in variables.items() if not isinstance(v, (str, int, float))}
                if "${" not in text.replace("${!", ""):
                    return text
                return {"Fn::Sub": [text, left] if left else text}
        out = {}
        for k, v in node.items():
            v = self.value(v)
            if v is not NO_VALUE:
                out[k] = v
        return out

    def check_rules(self, rules):
        for name, rule in rules.items():
            if "RuleCondition" in rule and not self.truth(rule["RuleCondition"]):
                continue
            for a in rule.get("Assertions", []):
                if not self.truth(a["Assert"]):
                    raise Refused(f"rule {name}: {a.get('AssertDescription', 'assertion failed')}")

    def resolve(self, transformed):
        out = {}
        for section in ("Resources", "Outputs"):
            kept = {}
            for name, item in transformed.get(section, {}).items():
                if "Condition" in item and not self.condition(item["Condition"]):
                    continue
                kept[name] = self.value(item)
            out[section] = kept
        return out


def packaged(template):
    """The template as `sam package` leaves it: every function's code in S3
    (the transform refuses a local CodeUri) and no build metadata."""
    t = copy.deepcopy(template)
    for name, r in t.get("Resources", {}).items():
        if r.get("Type") == "AWS::Serverless::Function":
            r.setdefault("Properties", {})["CodeUri"] = f"s3://keyhub-artifacts/{name}.zip"
            r.pop("Metadata", None)
    return t


def run(template, overrides):
    """(resolved template, None) or raises Refused / the transform's error."""
    values = parameter_values(template, overrides)
    resolver = Resolver(template, values)
    resolver.check_rules(template.get("Rules", {}))
    transformed = transform(packaged(template), dict(values), ManagedPolicies())
    # The transform keeps Conditions and may add its own.
    resolver.conditions_src = transformed.get("Conditions", {})
    return resolver.resolve(transformed)


def matrix(template):
    shape = shape_parameters(template)
    names = list(shape)
    defaults = {n: as_text(template["Parameters"][n].get("Default", "")) for n in names + EXTRA_PARAMETERS}
    sets = [(dict(defaults, **dict(zip(names, combo))), False) for combo in itertools.product(*(shape[n] for n in names))]
    sets += [(dict(defaults, **extra), True) for extra in EXTRA_SETS]
    results = []
    for params, is_extra in sets:
        entry = {"parameters": params, "extra": is_extra, "refused": None, "error": None, "template": None}
        try:
            entry["template"] = run(template, params)
        except Refused as e:
            entry["refused"] = str(e)
        except Exception as e:  # the transform's own refusal, in its words
            entry["error"] = str(e)
        results.append(entry)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=os.path.join(os.path.dirname(__file__), "..", "template.yaml"))
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--matrix", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = ap.parse_args()
    with open(args.template) as f:
        template = yaml_parse(f.read())

    if args.matrix:
        json.dump(matrix(template), sys.stdout, indent=1, sort_keys=True)
        return 0
    if args.check:
        results = matrix(template)
        failed = [r for r in results if r["error"]]
        for r in failed:
            label = " ".join(f"{k}={v!r}" for k, v in r["parameters"].items())
            print(f"FAIL: {label}\n  {r['error']}")
        refusals = sorted({r["refused"] for r in results if r["refused"]})
        refused = sum(1 for r in results if r["refused"])
        print(
            f"SAM transform: {len(results) - len(failed)} of {len(results)} parameter sets pass"
            + (f" ({refused} refused by the Rules, as designed: {'; '.join(refusals)})" if refused else "")
        )
        return 1 if failed else 0

    overrides = dict(p.split("=", 1) for p in args.param)
    try:
        resolved = run(template, overrides)
    except Exception as e:
        print(e, file=sys.stderr)
        return 1
    json.dump(resolved, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
