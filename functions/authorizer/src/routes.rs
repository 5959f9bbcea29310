//! The authorizer's route-to-scope table, from `KEYHUB_ROUTE_SCOPES`:
//! `{"GET /invoices/{id}": "invoices:read", "ANY /public/{proxy+}": null}`.
//! Keys are an HTTP method (or `ANY`) and an API Gateway resource path;
//! values are the scope a key needs, or null for any valid key. With a table,
//! routes not in it are refused; without one, any valid key passes.

use std::collections::BTreeMap;

use keyhub::scope::{Scope, Scopes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteScope {
    /// `None` for `ANY`.
    pub method: Option<String>,
    pub resource: String,
    pub scope: Option<Scope>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteScopes(Vec<RouteScope>);

impl RouteScopes {
    pub fn parse(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(RouteScopes::default());
        }
        let map: BTreeMap<String, Option<String>> = serde_json::from_str(json)
            .map_err(|e| format!("KEYHUB_ROUTE_SCOPES is not valid: {e}"))?;
        let mut out = Vec::with_capacity(map.len());
        for (route, scope) in map {
            let (method, resource) = route
                .split_once(' ')
                .ok_or_else(|| format!("KEYHUB_ROUTE_SCOPES: {route:?} is not \"METHOD /path\""))?;
            if !resource.starts_with('/') {
                return Err(format!("KEYHUB_ROUTE_SCOPES: {route:?} has no path"));
            }
            let method = match method.to_ascii_uppercase().as_str() {
                "ANY" | "*" => None,
                m => Some(m.to_string()),
            };
            let scope = scope.map(|s| Scope::parse(&s)).transpose()?;
            out.push(RouteScope {
                method,
                resource: resource.to_string(),
                scope,
            });
        }
        Ok(RouteScopes(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &RouteScope> {
        self.0.iter()
    }

    /// The entry for a request, preferring an exact method over `ANY`.
    pub fn find(&self, method: &str, resource: &str) -> Option<&RouteScope> {
        let same_path = || self.0.iter().filter(move |r| r.resource == resource);
        same_path()
            .find(|r| r.method.as_deref() == Some(method))
            .or_else(|| same_path().find(|r| r.method.is_none()))
    }
}

impl RouteScope {
    pub fn allows(&self, scopes: &Scopes) -> bool {
        self.scope.as_ref().is_none_or(|s| scopes.covers(s))
    }

    /// The execute-api resource for this route under `base`
    /// (`arn:…:api-id/stage`): path parameters become `*`.
    pub fn arn(&self, base: &str) -> String {
        let path: Vec<&str> = self
            .resource
            .split('/')
            .map(|seg| if seg.starts_with('{') { "*" } else { seg })
            .collect();
        format!(
            "{base}/{}{}",
            self.method.as_deref().unwrap_or("*"),
            path.join("/")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_exact_methods_before_any() {
        let t = RouteScopes::parse(
            r#"{"GET /invoices/{id}": "invoices:read", "ANY /invoices/{id}": "invoices:write", "GET /health": null}"#,
        )
        .unwrap();
        assert_eq!(
            t.find("GET", "/invoices/{id}")
                .unwrap()
                .scope
                .as_ref()
                .unwrap()
                .as_str(),
            "invoices:read"
        );
        assert_eq!(
            t.find("DELETE", "/invoices/{id}")
                .unwrap()
                .scope
                .as_ref()
                .unwrap()
                .as_str(),
            "invoices:write"
        );
        assert!(t.find("GET", "/health").unwrap().scope.is_none());
        assert!(t.find("GET", "/other").is_none());
    }

    #[test]
    fn arns_wildcard_parameters_and_any() {
        let t =
            RouteScopes::parse(r#"{"GET /invoices/{id}": null, "ANY /p/{proxy+}": null}"#).unwrap();
        let base = "arn:aws:execute-api:us-east-1:1:api/v1";
        let arns: Vec<String> = t.iter().map(|r| r.arn(base)).collect();
        assert!(arns.contains(&format!("{base}/GET/invoices/*")));
        assert!(arns.contains(&format!("{base}/*/p/*")));
    }

    #[test]
    fn bad_tables_are_refused() {
        for bad in [
            "[1]",
            r#"{"GET": null}"#,
            r#"{"GET invoices": null}"#,
            r#"{"GET /x": "Bad Scope"}"#,
        ] {
            assert!(RouteScopes::parse(bad).is_err(), "{bad}");
        }
        assert!(RouteScopes::parse("").unwrap().is_empty());
    }
}
