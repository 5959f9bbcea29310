//! template.yaml is the one definition of tables, routes and gateway
//! responses: these tests hold the code to it.

use std::collections::BTreeSet;

use keyhub::aws::store::KEYS_BY_ACCOUNT_INDEX;
use keyhub::config::Tables;
use keyhub::http::routes::ROUTES;
use keyhub_tools::template::Template;

fn template() -> Template {
    Template::builtin().unwrap()
}

#[test]
fn the_tables_the_store_uses_are_the_ones_the_template_declares() {
    let tables = template().tables("s").unwrap();
    let names: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    let expected = Tables::for_stack("s");
    for (_, name) in expected.env_vars() {
        assert!(names.contains(name), "{name} is not in template.yaml");
    }
    let keys = tables.iter().find(|t| t.name == expected.keys).unwrap();
    assert_eq!(keys.key_schema, vec![("id".into(), "HASH".into())]);
    let index = keys
        .indexes
        .iter()
        .find(|i| i.name == KEYS_BY_ACCOUNT_INDEX)
        .expect("account index");
    assert_eq!(
        index.key_schema,
        vec![
            ("account_id".into(), "HASH".into()),
            ("created_at".into(), "RANGE".into())
        ]
    );
    let accounts = tables.iter().find(|t| t.name == expected.accounts).unwrap();
    assert_eq!(accounts.key_schema, vec![("id".into(), "HASH".into())]);
}

#[test]
fn functions_get_each_table_name_from_the_template() {
    let text = keyhub_tools::template::TEMPLATE;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    let vars = &doc["Globals"]["Function"]["Environment"]["Variables"];
    for (var, logical) in [
        ("KEYS_TABLE", "KeysTable"),
        ("ACCOUNTS_TABLE", "AccountsTable"),
        ("PEPPER_SECRET_ID", "PepperSecret"),
    ] {
        let v = &vars[var];
        let serde_yaml_ng::Value::Tagged(t) = v else {
            panic!("{var} is not a !Ref: {v:?}")
        };
        assert_eq!(t.tag.to_string(), "!Ref");
        assert_eq!(t.value.as_str(), Some(logical), "{var}");
    }
}

#[test]
fn the_rest_api_has_exactly_the_routes_of_the_route_table() {
    let api: Vec<_> = template()
        .api_routes()
        .into_iter()
        .filter(|r| r.function == "ApiFunction")
        .collect();
    let in_template: BTreeSet<(String, String)> = api
        .iter()
        .filter(|r| r.method != "ANY")
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    // A route deployed as its resource's ANY alone has no method of its own.
    let in_code: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| !r.any_only)
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(in_template, in_code);
    // Each resource also has ANY, the catch-all that lets the API answer 405
    // for a method the resource lacks; no ANY elsewhere but the console's
    // resources, which have ANY alone.
    let catch_all: BTreeSet<String> = api
        .iter()
        .filter(|r| r.method == "ANY")
        .map(|r| r.path.clone())
        .collect();
    let resources: BTreeSet<String> = keyhub::http::routes::resources()
        .into_iter()
        .chain(keyhub_api::console::PATHS.iter().copied())
        .map(str::to_string)
        .collect();
    assert_eq!(catch_all, resources);
}

#[test]
fn gateway_responses_give_the_contract_shape_and_a_request_id() {
    let responses = template().gateway_responses();
    for kind in [
        "MISSING_AUTHENTICATION_TOKEN",
        "REQUEST_TOO_LARGE",
        "THROTTLED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    ] {
        let r = responses
            .iter()
            .find(|r| r.response_type == kind)
            .unwrap_or_else(|| panic!("{kind} missing"));
        assert!(
            r.headers
                .iter()
                .any(|(h, v)| h == "X-Request-Id" && v == "context.requestId"),
            "{kind}"
        );
        let sample = r
            .body_template
            .replace("$context.requestId", "id")
            .replace("$context.error.messageString", "\"m\"");
        let body: serde_json::Value =
            serde_json::from_str(&sample).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(body["status"], "error");
        assert!(body["error"]["code"].is_string());
        assert_eq!(body["request_id"], "id");
    }
    let nf = responses
        .iter()
        .find(|r| r.response_type == "MISSING_AUTHENTICATION_TOKEN")
        .unwrap();
    assert_eq!(nf.status, Some(404));
}

#[test]
fn every_route_behind_the_authorizer_is_in_its_route_table() {
    let t = template();
    let table = t
        .function_env("AuthorizerFunction")
        .into_iter()
        .find_map(|(k, v)| match v {
            keyhub_tools::template::EnvValue::Literal(s) if k == "KEYHUB_ROUTE_SCOPES" => Some(s),
            _ => None,
        })
        .expect("the authorizer gets KEYHUB_ROUTE_SCOPES");
    let scopes = keyhub_authorizer::routes::RouteScopes::parse(&table).unwrap();
    let protected: Vec<_> = t
        .api_routes()
        .into_iter()
        .filter(|r| r.authorizer.is_some())
        .collect();
    assert!(!protected.is_empty());
    for r in &protected {
        assert_eq!(r.authorizer.as_deref(), Some("KeyhubAuthorizer"));
        assert!(
            scopes.find(&r.method, &r.path).is_some(),
            "{} {} has no scope",
            r.method,
            r.path
        );
    }
    // The management API checks keys itself: none of its routes use the authorizer.
    assert!(
        t.api_routes()
            .iter()
            .filter(|r| r.function == "ApiFunction")
            .all(|r| r.authorizer.is_none())
    );
}

#[test]
fn authorizer_outcomes_have_gateway_responses() {
    let responses = template().gateway_responses();
    for (kind, status) in [
        ("UNAUTHORIZED", 401),
        ("ACCESS_DENIED", 403),
        ("AUTHORIZER_FAILURE", 503),
    ] {
        let r = responses
            .iter()
            .find(|r| r.response_type == kind)
            .unwrap_or_else(|| panic!("{kind}"));
        assert_eq!(r.status, Some(status), "{kind}");
        assert!(r.headers.iter().any(|(h, _)| h == "X-Request-Id"), "{kind}");
    }
    let denied = responses
        .iter()
        .find(|r| r.response_type == "ACCESS_DENIED")
        .unwrap();
    assert!(
        denied
            .body_template
            .contains("$context.authorizer.error_code")
    );
}
