//! template.yaml through the real SAM transform (aws-sam-translator, what
//! CloudFormation runs at deploy), for every combination of the parameters
//! that change the template's shape, resolved as CloudFormation would
//! (`scripts/sam_transform.py --matrix`), and held to the code: a stack
//! that transforms but gives a function the wrong environment, or the
//! authorizer the wrong identity source, fails here rather than in a
//! user's account.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use keyhub::config::Config;
use keyhub::http::auth::KeyHeader;
use keyhub::http::routes::ROUTES;
use keyhub_authorizer::routes::RouteScopes;
use serde_json::Value;

#[derive(Debug, serde::Deserialize)]
struct Case {
    parameters: BTreeMap<String, String>,
    /// One of the parameter sets tried one at a time against the product
    /// of the others (`EXTRA_SETS` in the script).
    extra: bool,
    /// A Rules assertion refused the parameters (before any resource).
    refused: Option<String>,
    /// The transform refused the template.
    error: Option<String>,
    template: Option<Value>,
}

impl Case {
    fn param(&self, name: &str) -> &str {
        self.parameters
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("the matrix does not vary {name}"))
    }

    fn label(&self) -> String {
        format!("{:?}", self.parameters)
    }

    fn resources(&self) -> &serde_json::Map<String, Value> {
        self.template
            .as_ref()
            .and_then(|t| t["Resources"].as_object())
            .unwrap_or_else(|| panic!("{}: no resources", self.label()))
    }

    fn resource(&self, id: &str) -> &Value {
        self.resources()
            .get(id)
            .unwrap_or_else(|| panic!("{}: no {id}", self.label()))
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.resources()
            .iter()
            .filter(move |(_, r)| r["Type"] == ty)
    }

    /// The parameter sets CloudFormation would go on to deploy.
    fn deploys(&self) -> bool {
        self.refused.is_none()
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every case, transformed once for all the tests here (about 6 s).
fn matrix() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let python = root().join(".local/venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `scripts/stack.sh setup` (make test does)",
            python.display()
        );
        let out = Command::new(python)
            .arg(root().join("scripts/sam_transform.py"))
            .arg("--matrix")
            .output()
            .expect("run scripts/sam_transform.py");
        assert!(
            out.status.success(),
            "sam_transform.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("sam_transform.py prints JSON")
    })
}

fn deployed() -> impl Iterator<Item = &'static Case> {
    matrix().iter().filter(|c| c.deploys())
}

/// `Fn::GetAtt [X, Arn]`, `Ref X`, or `X` inside a `Fn::Sub`: does `v` name
/// resource `id`?
fn names(v: &Value, id: &str) -> bool {
    match v {
        Value::String(s) => s.contains(&format!("${{{id}.")) || s.contains(&format!("${{{id}}}")),
        Value::Object(m) => {
            m.get("Ref").and_then(Value::as_str) == Some(id)
                || m.get("Fn::GetAtt").and_then(|g| g[0].as_str()) == Some(id)
                || m.values().any(|x| names(x, id))
        }
        Value::Array(a) => a.iter().any(|x| names(x, id)),
        _ => false,
    }
}

#[test]
fn the_transform_accepts_every_parameter_set_the_rules_let_through() {
    let cases = matrix();
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| Some(format!("{}: {}", c.label(), c.error.as_ref()?)))
        .collect();
    assert!(
        failed.is_empty(),
        "the SAM transform refuses:\n{}",
        failed.join("\n")
    );
    // The matrix covers what the issue names, so a parameter dropped from
    // the Conditions cannot quietly shrink it.
    let seen = |name: &str| -> BTreeSet<&str> { cases.iter().map(|c| c.param(name)).collect() };
    assert_eq!(
        seen("AuthorizerIdentityHeader"),
        BTreeSet::from(["", "Authorization", "X-API-Key"])
    );
    assert!(seen("AuthorizerCacheTtl").len() >= 2);
    assert!(seen("AuthorizerCacheTtl").contains("0"));
    assert_eq!(seen("DeployExample"), BTreeSet::from(["false", "true"]));
    assert_eq!(seen("Console"), BTreeSet::from(["false", "true"]));
    assert!(seen("AlarmTopicArn").contains(""));
    assert!(seen("WafRateLimitPerIp").contains("0"));
    assert!(seen("AuthorizerCacheStages").contains(""));
    assert!(seen("AuthorizerCacheStages").len() >= 2);
    assert!(cases.iter().filter(|c| c.deploys()).count() >= cases.len() / 2);
    // The custom domain and the egress VPC, one set at a time: a few sets
    // beside the product, not a product four times the size.
    assert_eq!(
        seen("WebhookEgressNatGateways"),
        BTreeSet::from(["0", "1", "2"])
    );
    for name in EXTRA_PARAMETERS {
        assert!(seen(name).len() >= 2, "{name} is never set");
    }
    let extra = cases.iter().filter(|c| c.extra).count();
    assert!(extra > 0 && extra * 10 < cases.len(), "{extra} extra sets");
}

#[test]
fn a_cache_with_no_identity_header_is_refused_before_anything_is_made() {
    for c in matrix() {
        let caching = c.param("AuthorizerCacheTtl") != "0";
        let header = c.param("AuthorizerIdentityHeader");
        let by_this_rule = c
            .refused
            .as_deref()
            .is_some_and(|why| why.starts_with("rule CacheNeedsIdentityHeader:"));
        assert_eq!(by_this_rule, caching && header.is_empty(), "{}", c.label());
        if by_this_rule {
            assert!(
                c.refused
                    .as_ref()
                    .unwrap()
                    .contains("AuthorizerIdentityHeader")
            );
        }
    }
}

/// A function's environment as CloudFormation sets it; a reference to a
/// resource (a table, queue or secret) reads as the resource's logical id.
fn environment(c: &Case, function: &str) -> BTreeMap<String, String> {
    let vars = &c.resource(function)["Properties"]["Environment"]["Variables"];
    vars.as_object()
        .unwrap_or_else(|| panic!("{}: {function} has no environment", c.label()))
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                // A string naming a resource (`${ExampleApi}`) stays a Fn::Sub.
                other => other["Ref"]
                    .as_str()
                    .or_else(|| other["Fn::Sub"].as_str())
                    .unwrap_or_else(|| panic!("{function}.{k} = {other}"))
                    .to_string(),
            };
            (k.clone(), value)
        })
        .collect()
}

#[test]
fn every_function_starts_with_the_environment_the_template_gives_it() {
    for c in deployed() {
        let example = c.param("DeployExample") == "true";
        let functions: BTreeSet<&str> = c
            .of_type("AWS::Lambda::Function")
            .map(|(id, _)| id.as_str())
            .collect();
        let mut expected = BTreeSet::from([
            "ApiFunction",
            "AuthorizerFunction",
            "UsageFunction",
            "WebhooksFunction",
            "SweeperFunction",
        ]);
        if example {
            expected.insert("ExampleFunction");
            expected.insert("PythonExampleFunction");
        }
        assert_eq!(functions, expected, "{}", c.label());
        for f in &functions {
            let env = environment(c, f);
            // What every main.rs reads first; it refuses to start otherwise.
            let config = Config::from_lookup(|k| env.get(k).cloned())
                .unwrap_or_else(|e| panic!("{}: {f}: {e}", c.label()));
            // The names are the resources' logical ids here: each variable
            // names a resource of the right kind.
            let kind = |id: &str| {
                c.resource(id)["Type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            for table in [
                &config.tables.keys,
                &config.tables.accounts,
                &config.tables.counters,
                &config.tables.usage,
                &config.tables.webhooks,
            ] {
                assert_eq!(kind(table), "AWS::DynamoDB::Table", "{f}: {table}");
            }
            assert_eq!(
                kind(&config.pepper_secret_id),
                "AWS::SecretsManager::Secret"
            );
            for queue in [&config.usage_queue_url, &config.webhooks.queue_url] {
                let queue = queue.as_deref().unwrap_or_else(|| panic!("{f}: no queue"));
                assert_eq!(kind(queue), "AWS::SQS::Queue", "{f}: {queue}");
            }
            // Logs go to a group of the stack's, which expires them.
            let group = c.resource(f)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{f} has no log group of its own"));
            let group = c.resource(group);
            assert_eq!(group["Type"], "AWS::Logs::LogGroup");
            assert_eq!(
                group["Properties"]["RetentionInDays"].as_str(),
                Some(
                    c.parameters
                        .get("LogRetentionDays")
                        .map_or("30", String::as_str)
                ),
                "{f}"
            );
        }
        let authorizer = environment(c, "AuthorizerFunction");
        let header = c.param("AuthorizerIdentityHeader");
        assert_eq!(
            authorizer.get("KEYHUB_IDENTITY_HEADER").map(String::as_str),
            Some(header)
        );
        KeyHeader::parse(header).unwrap_or_else(|e| panic!("{header:?}: {e}"));
        // A stage whose cached answers the API flushes must not be refilled
        // from the authorizer's own memory of a key just revoked.
        let own_cache = authorizer
            .get("KEYHUB_AUTH_CACHE_TTL_SECONDS")
            .map(String::as_str);
        if caching_stages(c).is_empty() {
            assert_eq!(own_cache, None, "{}", c.label());
        } else {
            assert_eq!(own_cache, Some("0"), "{}", c.label());
        }
        let scopes = authorizer
            .get("KEYHUB_ROUTE_SCOPES")
            .expect("the authorizer gets its route table");
        RouteScopes::parse(scopes).unwrap_or_else(|e| panic!("KEYHUB_ROUTE_SCOPES: {e}"));
        let dlq = environment(c, "WebhooksFunction");
        assert_eq!(dlq["WEBHOOK_DLQ_URL"], "WebhookDeadLetterQueue");
    }
}

/// `paths` of a REST API's OpenAPI body: (METHOD, path) → operation.
fn operations(c: &Case, api: &str) -> BTreeMap<(String, String), Value> {
    let paths = c.resource(api)["Properties"]["Body"]["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("{api} has no paths"));
    let mut out = BTreeMap::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let method = match method.as_str() {
                "x-amazon-apigateway-any-method" => "ANY".to_string(),
                m => m.to_ascii_uppercase(),
            };
            out.insert((method, path.clone()), op.clone());
        }
    }
    out
}

#[test]
fn every_route_of_the_code_reaches_the_api_function_without_the_authorizer() {
    for c in deployed() {
        let ops = operations(c, "Api");
        for r in ROUTES {
            // A route deployed as ANY alone reaches the function through it.
            let method = if r.any_only {
                "ANY".to_string()
            } else {
                r.method.to_string()
            };
            let key = (method, r.path.to_string());
            let op = ops
                .get(&key)
                .unwrap_or_else(|| panic!("{}: {key:?} is not deployed", c.label()));
            let integration = &op["x-amazon-apigateway-integration"];
            assert_eq!(integration["type"], "aws_proxy", "{key:?}");
            assert!(names(&integration["uri"], "ApiFunction"), "{key:?}");
            assert!(
                op.get("security").is_none(),
                "{key:?} is behind an authorizer"
            );
        }
        for (key, op) in &ops {
            assert!(
                names(&op["x-amazon-apigateway-integration"]["uri"], "ApiFunction"),
                "{key:?} on the management API goes elsewhere"
            );
        }
        assert!(c.resource("Api")["Properties"]["Body"]["securityDefinitions"].is_null());
    }
}

/// Lambda's resource policy of a function holds 20 KB; each API Gateway
/// event of SAM's adds a statement to it. The estimate writes each statement
/// as Lambda stores it, for the stack name samconfig.toml deploys (a longer
/// stack name lengthens each `Sid` and the function's ARN).
fn resource_policy_bytes(c: &Case, function: &str) -> usize {
    let statements: Vec<Value> = c
        .of_type("AWS::Lambda::Permission")
        .filter(|(_, p)| names(&p["Properties"]["FunctionName"], function))
        .map(|(id, p)| {
            let source = p["Properties"]["SourceArn"]["Fn::Sub"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: SourceArn is not a Fn::Sub"))
                .replace("${__ApiId__}", "abcdefghij");
            serde_json::json!({
                "Sid": format!("keyhub-{id}-ABCDEFGHIJKL"),
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "lambda:InvokeFunction",
                "Resource": format!("arn:aws:lambda:us-east-1:123456789012:function:keyhub-{function}-ABCDEFGHIJKL"),
                "Condition": {"ArnLike": {"AWS:SourceArn": source}},
            })
        })
        .collect();
    serde_json::json!({"Version": "2012-10-17", "Id": "default", "Statement": statements})
        .to_string()
        .len()
}

#[test]
fn the_console_is_served_by_the_api_function_and_its_parameter_turns_it_off() {
    let mut seen = BTreeSet::new();
    for c in deployed() {
        let on = c.param("Console") == "true";
        seen.insert(on);
        let ops = operations(c, "Api");
        for path in keyhub_api::console::PATHS {
            let op = ops
                .get(&("ANY".to_string(), path.to_string()))
                .unwrap_or_else(|| panic!("{}: ANY {path} is not deployed", c.label()));
            assert!(names(
                &op["x-amazon-apigateway-integration"]["uri"],
                "ApiFunction"
            ));
            assert!(op.get("security").is_none(), "{path} needs no key");
            // ANY alone: one permission per console resource.
            for (method, p) in ops.keys() {
                assert!(p != path || method == "ANY", "{method} {path}");
            }
        }
        let env = environment(c, "ApiFunction");
        let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(config.console, on, "{}", c.label());
        let outputs = &c.template.as_ref().unwrap()["Outputs"];
        assert_eq!(outputs.get("ConsoleUrl").is_some(), on, "{}", c.label());
        let bytes = resource_policy_bytes(c, "ApiFunction");
        assert!(
            bytes < 20 * 1024 * 9 / 10,
            "{}: ApiFunction's resource policy is about {bytes} bytes, near Lambda's 20 KB",
            c.label()
        );
    }
    assert_eq!(seen, BTreeSet::from([false, true]));
}

#[test]
fn the_example_routes_run_the_authorizer_with_the_identity_source_and_cache_asked_for() {
    for c in deployed() {
        if c.param("DeployExample") != "true" {
            assert!(!c.resources().contains_key("ExampleApi"), "{}", c.label());
            continue;
        }
        let body = &c.resource("ExampleApi")["Properties"]["Body"];
        let auth = &body["securityDefinitions"]["KeyhubAuthorizer"];
        let lambda = &auth["x-amazon-apigateway-authorizer"];
        assert_eq!(lambda["type"], "request");
        assert!(names(&lambda["authorizerUri"], "AuthorizerFunction"));
        let header = c.param("AuthorizerIdentityHeader");
        let source = lambda.get("identitySource").and_then(Value::as_str);
        if header.is_empty() {
            assert_eq!(source, None, "{}: either header must reach it", c.label());
        } else {
            assert_eq!(
                source,
                Some(format!("method.request.header.{header}").as_str())
            );
        }
        assert_eq!(
            lambda["authorizerResultTtlInSeconds"].as_str(),
            Some(c.param("AuthorizerCacheTtl")),
            "{}",
            c.label()
        );
        let ops = operations(c, "ExampleApi");
        let routes: BTreeSet<_> = ops.keys().cloned().collect();
        let route = |m: &str, p: &str| (m.to_string(), p.to_string());
        assert_eq!(
            routes,
            BTreeSet::from([
                route("GET", "/example/hello"),
                route("POST", "/example/hello"),
                route("GET", "/python/hello"),
                route("POST", "/python/hello"),
            ])
        );
        for ((method, path), op) in &ops {
            assert_eq!(
                op["security"][0]["KeyhubAuthorizer"],
                serde_json::json!([]),
                "{method} {path}"
            );
            let function = match path.as_str() {
                "/python/hello" => "PythonExampleFunction",
                _ => "ExampleFunction",
            };
            assert!(
                names(&op["x-amazon-apigateway-integration"]["uri"], function),
                "{method} {path} does not reach {function}"
            );
        }
        // The authorizer lets every example route through with a scope: a
        // route missing from the table would be refused to every key.
        let table = environment(c, "AuthorizerFunction")["KEYHUB_ROUTE_SCOPES"].clone();
        let table = RouteScopes::parse(&table).expect("the route table parses");
        for (method, path) in ops.keys() {
            assert!(
                table.find(method, path).is_some(),
                "{method} {path} is not in AuthorizerRouteScopes"
            );
        }
        // The Python function runs on a Python runtime, not on the Rust
        // functions' provided.al2023 from Globals.
        let python = &c.resource("PythonExampleFunction")["Properties"];
        assert!(
            python["Runtime"]
                .as_str()
                .is_some_and(|r| r.starts_with("python3.")),
            "{}",
            python["Runtime"]
        );
        assert_eq!(python["Handler"], "app.handler");
        // API Gateway may call the authorizer and each function.
        for (function, source) in [
            ("AuthorizerFunction", "/authorizers/"),
            ("ExampleFunction", ""),
            ("PythonExampleFunction", ""),
        ] {
            assert!(
                c.of_type("AWS::Lambda::Permission").any(|(_, p)| {
                    let p = &p["Properties"];
                    names(&p["FunctionName"], function)
                        && names(&p["SourceArn"], "ExampleApi")
                        && p["SourceArn"].to_string().contains(source)
                }),
                "{}: API Gateway may not invoke {function}",
                c.label()
            );
        }
        let responses = |api: &str| {
            c.resource(api)["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"].clone()
        };
        assert_eq!(
            responses("ExampleApi"),
            responses("Api"),
            "the APIs answer errors alike"
        );
    }
}

#[test]
fn gateway_responses_give_the_contract_shape() {
    for c in deployed() {
        let responses =
            &c.resource("Api")["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"];
        for (kind, status) in [
            ("UNAUTHORIZED", "401"),
            ("ACCESS_DENIED", "403"),
            ("AUTHORIZER_FAILURE", "503"),
            ("MISSING_AUTHENTICATION_TOKEN", "404"),
            ("THROTTLED", "429"),
        ] {
            let r = &responses[kind];
            assert_eq!(r["statusCode"].as_str(), Some(status), "{kind}");
            assert_eq!(
                r["responseParameters"]["gatewayresponse.header.X-Request-Id"], "context.requestId",
                "{kind}"
            );
            let body = r["responseTemplates"]["application/json"]
                .as_str()
                .unwrap_or_default();
            assert!(body.contains("\"status\":\"error\""), "{kind}: {body}");
        }
    }
}

#[test]
fn data_and_the_secrets_it_depends_on_outlive_the_stack() {
    for c in deployed() {
        for id in [
            "KeysTable",
            "AccountsTable",
            "UsageTable",
            "WebhooksTable",
            "PepperSecret",
            "WebhookKeySecret",
        ] {
            let r = c.resource(id);
            assert_eq!(r["DeletionPolicy"], "Retain", "{id}");
            assert_eq!(r["UpdateReplacePolicy"], "Retain", "{id}");
        }
    }
}

#[test]
fn the_waf_rule_is_there_only_when_asked_for_and_guards_each_stage() {
    for c in deployed() {
        let limit = c.param("WafRateLimitPerIp");
        let acls: Vec<_> = c.of_type("AWS::WAFv2::WebACL").collect();
        if limit == "0" {
            assert!(acls.is_empty(), "{}", c.label());
            continue;
        }
        let [(acl_id, acl)] = acls.as_slice() else {
            panic!("{}: one web ACL expected", c.label())
        };
        let rule = &acl["Properties"]["Rules"][0];
        assert_eq!(
            rule["Statement"]["RateBasedStatement"]["AggregateKeyType"],
            "IP"
        );
        assert_eq!(
            rule["Statement"]["RateBasedStatement"]["Limit"].as_str(),
            Some(limit)
        );
        assert_eq!(
            rule["Action"]["Block"]["CustomResponse"]["ResponseCode"],
            429
        );
        let mut apis: Vec<&str> = vec!["Api"];
        if c.param("DeployExample") == "true" {
            apis.push("ExampleApi");
        }
        for api in apis {
            assert!(
                c.of_type("AWS::WAFv2::WebACLAssociation").any(|(_, a)| {
                    names(&a["Properties"]["WebACLArn"], acl_id)
                        && names(&a["Properties"]["ResourceArn"], api)
                        && names(&a["Properties"]["ResourceArn"], &format!("{api}Stage"))
                }),
                "{}: {api}'s stage is not behind the web ACL",
                c.label()
            );
        }
    }
}

/// The statements of a function's role that allow `action` on `table`.
fn grants<'a>(c: &'a Case, function: &str, action: &str, table: &str) -> Vec<&'a Value> {
    let role = c.resource(&format!("{function}Role"));
    let mut out = Vec::new();
    for policy in role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for st in policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let actions = match &st["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let on_table = match &st["Resource"] {
                Value::Array(r) => r.iter().any(|r| r["Fn::GetAtt"][0] == table),
                r => r["Fn::GetAtt"][0] == table,
            };
            if actions.contains(&action) && on_table {
                out.push(st);
            }
        }
    }
    out
}

#[test]
fn workers_write_only_what_their_code_writes() {
    for c in deployed() {
        // The example's guard, the sweeper and usage (usage.anomaly) put
        // events in the outbox partition and clear them; no other item of
        // the webhooks table.
        let mut outbox_writers = vec!["SweeperFunction", "UsageFunction"];
        if c.param("DeployExample") == "true" {
            outbox_writers.push("ExampleFunction");
        }
        for f in outbox_writers {
            for action in ["dynamodb:PutItem", "dynamodb:BatchWriteItem"] {
                let st = grants(c, f, action, "WebhooksTable");
                assert!(!st.is_empty(), "{f} needs {action} on the outbox");
                for s in st {
                    assert_eq!(
                        s["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
                        serde_json::json!(keyhub::aws::store::outbox_partitions()),
                        "{f} {action}"
                    );
                }
            }
        }
        // Usage and the sweeper change a few attributes of a key, never its
        // digest, scopes or state.
        for (f, changes) in [
            ("UsageFunction", &["usage_count", "last_used"][..]),
            ("SweeperFunction", &["expiry_check", "rotation_check"][..]),
        ] {
            let st = grants(c, f, "dynamodb:UpdateItem", "KeysTable");
            assert_eq!(st.len(), 1, "{f}");
            let allowed: Vec<&str> =
                st[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{f}: key updates are not limited to attributes"))
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
            for a in changes.iter().chain(&["id"]) {
                assert!(allowed.contains(a), "{f} cannot write {a}");
            }
            for a in ["digest", "scopes", "is_active", "plan", "rate_limits"] {
                assert!(!allowed.contains(&a), "{f} may write {a}");
            }
            assert!(
                grants(c, f, "dynamodb:PutItem", "KeysTable").is_empty(),
                "{f} may put whole keys"
            );
        }
    }
}

#[test]
fn the_api_may_read_the_counters_whose_standing_it_shows() {
    // GET /api/v1/api-keys/{id} reads the key's and account's counter items
    // for rate_limit_status (DynamoDB Local has no IAM, so only the role
    // says whether AWS lets it); the guard's limiter updates them.
    for c in deployed() {
        for action in ["dynamodb:GetItem", "dynamodb:UpdateItem"] {
            assert!(
                !grants(c, "ApiFunction", action, "CountersTable").is_empty(),
                "ApiFunction needs {action} on the counters"
            );
        }
    }
}

/// The stages whose authorizer cache a parameter set asks the API and the
/// sweeper to flush: the example API's when it caches, then
/// `AuthorizerCacheStages`.
fn caching_stages(c: &Case) -> Vec<String> {
    let mut stages = Vec::new();
    if c.param("DeployExample") == "true" && c.param("AuthorizerCacheTtl") != "0" {
        let stage = c.parameters.get("StageName").map_or("v1", String::as_str);
        stages.push(format!(
            "arn:aws:apigateway:us-east-1::/restapis/${{ExampleApi}}/stages/{stage}"
        ));
    }
    let listed = c.param("AuthorizerCacheStages");
    stages.extend(
        listed
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    );
    stages
}

/// Every statement of a function's role that names an API Gateway action.
fn apigateway_statements<'a>(c: &'a Case, function: &str) -> Vec<&'a Value> {
    c.resource(&format!("{function}Role"))["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter(|st| st["Action"].to_string().contains("apigateway:"))
        .collect()
}

#[test]
fn only_the_api_and_the_sweeper_may_flush_and_only_the_caching_stages() {
    let mut flushing = 0;
    for c in deployed() {
        let stages = caching_stages(c);
        for f in ["ApiFunction", "SweeperFunction"] {
            let env = environment(c, f);
            let listed = env
                .get("KEYHUB_AUTHORIZER_CACHE_STAGES")
                .unwrap_or_else(|| panic!("{}: {f} is not told the stages", c.label()));
            assert_eq!(listed, &stages.join(","), "{}: {f}", c.label());
            // What the function will parse, with the example API's id in.
            let parsed = keyhub::aws::flush::stages_from_lookup(|_| {
                Some(listed.replace("${ExampleApi}", "a1b2c3"))
            })
            .unwrap_or_else(|e| panic!("{}: {f}: {e}", c.label()));
            assert_eq!(parsed.len(), stages.len());

            let statements = apigateway_statements(c, f);
            if stages.is_empty() {
                assert!(statements.is_empty(), "{}: {f}: {statements:?}", c.label());
                continue;
            }
            flushing += 1;
            assert_eq!(statements.len(), 1, "{}: {f}: {statements:?}", c.label());
            let st = statements[0];
            assert_eq!(st["Effect"], "Allow");
            assert_eq!(st["Action"], "apigateway:DELETE", "{}: {f}", c.label());
            let want: Vec<Value> = stages
                .iter()
                .map(|s| Value::from(format!("{s}/cache/authorizers")))
                .collect();
            assert_eq!(st["Resource"], Value::Array(want), "{}: {f}", c.label());
            assert!(st.get("Condition").is_none());
        }
        for (id, _) in c.of_type("AWS::Lambda::Function") {
            if id != "ApiFunction" && id != "SweeperFunction" {
                assert!(
                    apigateway_statements(c, id).is_empty(),
                    "{}: {id} may call API Gateway",
                    c.label()
                );
            }
        }
    }
    assert!(flushing > 0, "no parameter set flushes anything");
}

#[test]
fn every_stage_writes_the_access_log_the_usage_function_is_subscribed_to() {
    use keyhub::domain::access_log::FORMAT;
    for c in deployed() {
        let example = c.param("DeployExample") == "true";
        let stages: Vec<_> = c.of_type("AWS::ApiGateway::Stage").collect();
        assert_eq!(stages.len(), if example { 2 } else { 1 }, "{}", c.label());
        for (id, stage) in &stages {
            let setting = &stage["Properties"]["AccessLogSetting"];
            assert_eq!(setting["Format"].as_str(), Some(FORMAT), "{id}");
            assert!(names(&setting["DestinationArn"], "ApiAccessLogs"), "{id}");
        }
        let group = c.resource("ApiAccessLogs");
        assert_eq!(group["Type"], "AWS::Logs::LogGroup");
        assert_eq!(
            group["Properties"]["RetentionInDays"].as_str(),
            Some(
                c.parameters
                    .get("LogRetentionDays")
                    .map_or("30", String::as_str)
            )
        );
        // One subscription, every line, to the usage function, which
        // CloudWatch Logs may invoke for that group.
        let filters: Vec<_> = c.of_type("AWS::Logs::SubscriptionFilter").collect();
        assert_eq!(filters.len(), 1, "{}", c.label());
        let filter = &filters[0].1["Properties"];
        assert!(names(&filter["LogGroupName"], "ApiAccessLogs"));
        assert!(names(&filter["DestinationArn"], "UsageFunction"));
        assert_eq!(filter["FilterPattern"], "");
        assert!(
            c.of_type("AWS::Lambda::Permission").any(|(_, p)| {
                let p = &p["Properties"];
                p["Principal"] == "logs.amazonaws.com"
                    && names(&p["FunctionName"], "UsageFunction")
                    && names(&p["SourceArn"], "ApiAccessLogs")
            }),
            "{}: CloudWatch Logs may not invoke the usage function",
            c.label()
        );
        // A batch that keeps failing ends in the usage dead-letter queue.
        let (_, invoke) = c
            .of_type("AWS::Lambda::EventInvokeConfig")
            .find(|(_, r)| names(&r["Properties"]["FunctionName"], "UsageFunction"))
            .expect("the usage function's asynchronous invocations are configured");
        assert!(names(
            &invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
            "UsageDeadLetterQueue"
        ));
        // API Gateway writes logs only with the account's CloudWatch role,
        // set before any API of the stack is made.
        let account = c.resource("ApiGatewayAccount");
        assert_eq!(account["Type"], "AWS::ApiGateway::Account");
        assert!(names(
            &account["Properties"]["CloudWatchRoleArn"],
            "ApiGatewayCloudWatchRole"
        ));
        // The region's setting outlives the stack, so its role must too.
        let role = c.resource("ApiGatewayCloudWatchRole");
        assert_eq!(role["DeletionPolicy"], "Retain");
        assert_eq!(role["UpdateReplacePolicy"], "Retain");
        for (id, api) in c.of_type("AWS::ApiGateway::RestApi") {
            let on = &api["DependsOn"];
            assert!(
                on == "ApiGatewayAccount"
                    || on
                        .as_array()
                        .is_some_and(|a| a.iter().any(|d| d == "ApiGatewayAccount")),
                "{id} may be made before the account's log role"
            );
        }
        // Every function counts the authorizer's requests from the log
        // (the guard sends none for them).
        for (f, _) in c.of_type("AWS::Lambda::Function") {
            let env = environment(c, f);
            let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
            assert!(config.usage_from_access_log, "{}: {f}", c.label());
        }
    }
}

// --- The custom domain and the egress VPC (issue 15, items 7 and 8) -------

/// The parameters the matrix tries a set at a time (the script's
/// `EXTRA_SETS`), outside the product of the others.
const EXTRA_PARAMETERS: [&str; 5] = [
    "CustomDomainBasePath",
    "CustomDomainCertificateArn",
    "CustomDomainHostedZoneId",
    "CustomDomainName",
    "WebhookEgressNatGateways",
];

/// The product's parameter set an extra set was varied from: the same
/// values, with the extra parameters at their defaults.
fn base_of(c: &Case) -> &'static Case {
    matrix()
        .iter()
        .find(|b| {
            !b.extra
                && b.parameters.iter().all(|(k, v)| {
                    EXTRA_PARAMETERS.contains(&k.as_str()) || c.parameters.get(k) == Some(v)
                })
        })
        .unwrap_or_else(|| panic!("{}: no base set", c.label()))
}

fn outputs(c: &Case) -> &serde_json::Map<String, Value> {
    c.template.as_ref().unwrap()["Outputs"]
        .as_object()
        .expect("outputs")
}

#[test]
fn custom_domain_settings_are_refused_unless_a_name_and_its_certificate_go_together() {
    let mut refused = BTreeSet::new();
    for c in matrix() {
        let name = c.param("CustomDomainName");
        let cert = c.param("CustomDomainCertificateArn");
        let rest = [
            cert,
            c.param("CustomDomainBasePath"),
            c.param("CustomDomainHostedZoneId"),
        ];
        let expected = if name.is_empty() {
            rest.iter().any(|v| !v.is_empty())
        } else {
            cert.is_empty()
        };
        let why = c.refused.as_deref().unwrap_or_default();
        assert_eq!(
            why.starts_with("rule CustomDomain"),
            expected,
            "{}: {why}",
            c.label()
        );
        if expected {
            refused.insert(why.split(':').next().unwrap_or_default().to_string());
        }
    }
    assert_eq!(refused.len(), 2, "both rules are tried: {refused:?}");
}

#[test]
fn the_custom_domain_maps_the_stage_root_so_the_version_appears_once() {
    let mut on = 0;
    for c in deployed() {
        let name = c.param("CustomDomainName");
        let domains: Vec<_> = c.of_type("AWS::ApiGateway::DomainName").collect();
        let mappings: Vec<_> = c.of_type("AWS::ApiGateway::BasePathMapping").collect();
        let records: Vec<_> = c.of_type("AWS::Route53::RecordSet").collect();
        let out = outputs(c);
        if name.is_empty() {
            assert!(domains.is_empty() && mappings.is_empty() && records.is_empty());
            assert!(!out.contains_key("ApiCustomDomainUrl"), "{}", c.label());
            assert!(!out.contains_key("ApiCustomDomainTarget"), "{}", c.label());
            continue;
        }
        on += 1;
        let [(domain_id, domain)] = domains.as_slice() else {
            panic!("{}: one domain expected", c.label())
        };
        let d = &domain["Properties"];
        assert_eq!(d["DomainName"].as_str(), Some(name));
        assert_eq!(
            d["RegionalCertificateArn"].as_str(),
            Some(c.param("CustomDomainCertificateArn"))
        );
        assert_eq!(
            d["EndpointConfiguration"]["Types"],
            serde_json::json!(["REGIONAL"])
        );
        assert_eq!(d["SecurityPolicy"], "TLS_1_2");

        let [(_, mapping)] = mappings.as_slice() else {
            panic!("{}: one base path mapping expected", c.label())
        };
        let m = &mapping["Properties"];
        assert!(names(&m["DomainName"], domain_id));
        assert!(names(&m["RestApiId"], "Api"));
        // The stage resource, so the mapping is made after the stage.
        assert!(names(&m["Stage"], "ApiStage"), "{}", m["Stage"]);
        let base = c.param("CustomDomainBasePath");
        assert_eq!(m["BasePath"].as_str(), (!base.is_empty()).then_some(base));

        // The stage's root is the domain's (or the base path's): the
        // contract's paths follow with their one version.
        let url = out["ApiCustomDomainUrl"]["Value"].as_str().unwrap();
        let root = if base.is_empty() {
            format!("https://{name}")
        } else {
            format!("https://{name}/{base}")
        };
        assert_eq!(url, format!("{root}/api/v1"));
        for r in ROUTES {
            assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
        }
        assert_eq!(url.matches("v1").count(), 1, "{url}");
        assert!(names(&out["ApiCustomDomainTarget"]["Value"], domain_id));

        let zone = c.param("CustomDomainHostedZoneId");
        if zone.is_empty() {
            assert!(records.is_empty(), "{}", c.label());
            continue;
        }
        let [(_, record)] = records.as_slice() else {
            panic!("{}: one record expected", c.label())
        };
        let r = &record["Properties"];
        assert_eq!(r["HostedZoneId"].as_str(), Some(zone));
        assert_eq!(r["Name"].as_str(), Some(name));
        assert_eq!(r["Type"], "A");
        assert!(names(&r["AliasTarget"]["DNSName"], domain_id));
        assert!(names(&r["AliasTarget"]["HostedZoneId"], domain_id));
    }
    assert!(on >= 3, "{on} sets with a custom domain");
}

/// The statements of the webhook function's role that deny it the network
/// interface actions (SAM's VPC policy taken back).
fn eni_denials(role: &Value) -> Vec<&Value> {
    role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter(|st| {
            st["Effect"] == "Deny"
                && st["Action"]
                    .to_string()
                    .contains("ec2:CreateNetworkInterface")
        })
        .collect()
}

/// `a.b.c.d/n` as its first address and size.
fn ipv4_network(cidr: &str) -> (u32, u32) {
    let (addr, len) = cidr.split_once('/').expect("a CIDR");
    let addr: std::net::Ipv4Addr = addr.parse().expect("an IPv4 address");
    let len: u32 = len.parse().expect("a prefix length");
    (u32::from(addr), 1u32 << (32 - len))
}

/// The route table associated with a subnet, and its default route.
fn default_route<'a>(c: &'a Case, subnet: &str) -> &'a Value {
    let (_, assoc) = c
        .of_type("AWS::EC2::SubnetRouteTableAssociation")
        .find(|(_, a)| names(&a["Properties"]["SubnetId"], subnet))
        .unwrap_or_else(|| panic!("{}: {subnet} has no route table", c.label()));
    let table = assoc["Properties"]["RouteTableId"]["Ref"].as_str().unwrap();
    let (_, route) = c
        .of_type("AWS::EC2::Route")
        .find(|(_, r)| {
            names(&r["Properties"]["RouteTableId"], table)
                && r["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
        })
        .unwrap_or_else(|| panic!("{}: {table} has no default route", c.label()));
    &route["Properties"]
}

#[test]
fn webhooks_leave_through_the_nat_gateways_addresses_only_when_asked_for() {
    let mut on = BTreeSet::new();
    for c in deployed() {
        let nats: usize = c.param("WebhookEgressNatGateways").parse().unwrap();
        let function = &c.resource("WebhooksFunction")["Properties"];
        let env = environment(c, "WebhooksFunction");
        // The function runs with the default address policy everywhere.
        assert!(!env.contains_key("KEYHUB_WEBHOOK_ALLOWED_NETWORKS"));
        assert!(!env.contains_key("KEYHUB_WEBHOOK_ALLOW_HTTP"));
        let denials = eni_denials(c.resource("WebhooksFunctionRole"));
        if nats == 0 {
            assert!(function.get("VpcConfig").is_none(), "{}", c.label());
            assert!(
                c.resources().values().all(|r| !r["Type"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("AWS::EC2::")),
                "{}: EC2 resources without egress",
                c.label()
            );
            assert!(!outputs(c).contains_key("WebhookEgressIps"));
            // SAM's VPC policy is on the role anyway; every network
            // interface action of it is denied.
            let [deny] = denials.as_slice() else {
                panic!("{}: {denials:?}", c.label())
            };
            for action in [
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ] {
                assert!(deny["Action"].to_string().contains(action), "{action}");
            }
            assert_eq!(deny["Resource"], "*");
            continue;
        }
        on.insert(nats);
        assert!(denials.is_empty(), "{}: {denials:?}", c.label());
        let vpc = &function["VpcConfig"];
        let subnets: Vec<&str> = vpc["SubnetIds"]
            .as_array()
            .expect("subnets")
            .iter()
            .map(|s| s["Ref"].as_str().expect("a subnet of the stack's"))
            .collect();
        assert_eq!(subnets.len(), 2, "{}", c.label());
        let zone = |s: &str| c.resource(s)["Properties"]["AvailabilityZone"].clone();
        assert_ne!(zone(subnets[0]), zone(subnets[1]), "two zones");

        // Private subnets: their way out is a NAT gateway, whose own subnet
        // goes out through the internet gateway, from its Elastic IP.
        let mut used_nats = BTreeSet::new();
        for s in &subnets {
            let nat = default_route(c, s)["NatGatewayId"]["Ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: {s} does not go out through a NAT", c.label()));
            used_nats.insert(nat);
        }
        let gateways: Vec<_> = c.of_type("AWS::EC2::NatGateway").collect();
        let eips: Vec<_> = c.of_type("AWS::EC2::EIP").collect();
        assert_eq!(gateways.len(), nats, "{}", c.label());
        assert_eq!(eips.len(), nats, "{}", c.label());
        assert_eq!(used_nats.len(), nats, "each gateway serves a zone");
        for (id, nat) in &gateways {
            assert!(used_nats.contains(id.as_str()));
            let p = &nat["Properties"];
            let subnet = p["SubnetId"]["Ref"].as_str().unwrap();
            let igw = default_route(c, subnet)["GatewayId"]["Ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}'s subnet is not public"));
            assert_eq!(c.resource(igw)["Type"], "AWS::EC2::InternetGateway");
            let eip = p["AllocationId"]["Fn::GetAtt"][0].as_str().unwrap();
            assert_eq!(c.resource(eip)["Type"], "AWS::EC2::EIP");
        }
        let listed = &outputs(c)["WebhookEgressIps"]["Value"];
        for (eip, _) in &eips {
            assert!(
                names(listed, eip),
                "{}: {eip} is not in the output",
                c.label()
            );
        }

        // In: nothing. Out: TCP anywhere (receivers and the AWS APIs).
        let [group] = vpc["SecurityGroupIds"].as_array().unwrap().as_slice() else {
            panic!("one security group")
        };
        let group = &c.resource(group["Ref"].as_str().unwrap())["Properties"];
        assert!(group.get("SecurityGroupIngress").is_none());
        for rule in group["SecurityGroupEgress"].as_array().unwrap() {
            assert_eq!(rule["IpProtocol"], "tcp");
            assert_eq!(rule["CidrIp"], "0.0.0.0/0");
        }
        // DynamoDB from the private subnets without the NAT.
        let (_, endpoint) = c
            .of_type("AWS::EC2::VPCEndpoint")
            .find(|(_, e)| e["Properties"]["ServiceName"] == "com.amazonaws.us-east-1.dynamodb")
            .expect("a DynamoDB endpoint");
        assert_eq!(endpoint["Properties"]["VpcEndpointType"], "Gateway");
        for s in &subnets {
            let (_, assoc) = c
                .of_type("AWS::EC2::SubnetRouteTableAssociation")
                .find(|(_, a)| names(&a["Properties"]["SubnetId"], s))
                .unwrap();
            let table = assoc["Properties"]["RouteTableId"]["Ref"].as_str().unwrap();
            assert!(names(&endpoint["Properties"]["RouteTableIds"], table));
        }

        // The address policy the function runs with refuses every address
        // of the VPC (the NAT gateways', the resolver's at base + 2, other
        // functions' interfaces), and the metadata and DNS link-local ones.
        let policy = keyhub::netpolicy::AddressPolicy::parse("", false).unwrap();
        let [(_, vpc_resource)] = c.of_type("AWS::EC2::VPC").collect::<Vec<_>>()[..] else {
            panic!("one VPC")
        };
        let vpc_cidr = vpc_resource["Properties"]["CidrBlock"].as_str().unwrap();
        let (vpc_first, vpc_size) = ipv4_network(vpc_cidr);
        let mut cidrs = vec![vpc_cidr];
        for (_, s) in c.of_type("AWS::EC2::Subnet") {
            let cidr = s["Properties"]["CidrBlock"].as_str().unwrap();
            let (first, size) = ipv4_network(cidr);
            assert!(
                first >= vpc_first && first + size <= vpc_first + vpc_size,
                "{cidr}"
            );
            cidrs.push(cidr);
        }
        for cidr in cidrs {
            let (first, size) = ipv4_network(cidr);
            for offset in [0, 1, 2, 3, size / 2, size - 2, size - 1] {
                let ip = std::net::Ipv4Addr::from(first + offset);
                assert!(!policy.allows(ip.into()), "{ip} in {cidr} is allowed");
            }
        }
        for ip in [
            "169.254.169.254",
            "169.254.169.253",
            "169.254.169.123",
            "fd00:ec2::254",
            "fd00:ec2::253",
        ] {
            assert!(!policy.allows(ip.parse().unwrap()), "{ip}");
        }
    }
    assert_eq!(on, BTreeSet::from([1, 2]));
}

/// `ExampleApi`'s deployment is named afresh by every transform
/// (`AlwaysDeploy`): its id, and each reference to it, without the suffix.
fn without_deployment_suffix(text: &str) -> String {
    const NAME: &str = "ExampleApiDeployment";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(NAME) {
        out.push_str(&rest[..at + NAME.len()]);
        rest = &rest[at + NAME.len()..];
        let hex = rest.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        rest = &rest[hex..];
    }
    out.push_str(rest);
    out
}

/// A case's resources with `ExampleApi`'s deployment named (and
/// described, by the same fresh hash) alike.
fn comparable(c: &Case) -> BTreeMap<String, Value> {
    c.resources()
        .iter()
        .map(|(id, r)| {
            let mut r: Value =
                serde_json::from_str(&without_deployment_suffix(&r.to_string())).unwrap();
            let id = without_deployment_suffix(id);
            if id == "ExampleApiDeployment" {
                r["Properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("Description");
            }
            (id, r)
        })
        .collect()
}

#[test]
fn a_custom_domain_or_the_egress_vpc_changes_nothing_else() {
    let mut compared = 0;
    for c in matrix().iter().filter(|c| c.extra && c.deploys()) {
        let base = base_of(c);
        let (before_all, after_all) = (comparable(base), comparable(c));
        let domain = !c.param("CustomDomainName").is_empty();
        let egress = c.param("WebhookEgressNatGateways") != "0";
        let ours = |id: &str| {
            (domain && ["ApiDomainName", "ApiBasePathMapping", "ApiDomainRecord"].contains(&id))
                || (egress && id.starts_with("WebhookEgress"))
        };
        for (id, before) in &before_all {
            let mut after = after_all
                .get(id)
                .unwrap_or_else(|| panic!("{}: {id} is gone", c.label()))
                .clone();
            let mut before = before.clone();
            if egress && id == "WebhooksFunction" {
                after["Properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("VpcConfig");
            }
            if egress && id == "WebhooksFunctionRole" {
                for policy in before["Properties"]["Policies"].as_array_mut().unwrap() {
                    if let Some(st) = policy["PolicyDocument"]["Statement"].as_array_mut() {
                        st.retain(|s| {
                            !(s["Effect"] == "Deny"
                                && s["Action"]
                                    .to_string()
                                    .contains("ec2:CreateNetworkInterface"))
                        });
                    }
                }
            }
            assert_eq!(after, before, "{}: {id} changed", c.label());
        }
        for id in after_all.keys() {
            assert!(
                before_all.contains_key(id) || ours(id),
                "{}: {id} is new",
                c.label()
            );
        }
        let (before, after) = (outputs(base), outputs(c));
        for (id, v) in before {
            assert_eq!(after.get(id), Some(v), "{}: output {id}", c.label());
        }
        for id in after.keys() {
            let expected = before.contains_key(id)
                || (domain && (id == "ApiCustomDomainUrl" || id == "ApiCustomDomainTarget"))
                || (egress && id == "WebhookEgressIps");
            assert!(expected, "{}: output {id} is new", c.label());
        }
        compared += 1;
    }
    assert!(compared >= 6, "{compared} sets compared");
}
