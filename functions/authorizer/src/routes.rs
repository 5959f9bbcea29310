//! The authorizer's route-to-scope table, from `KEYHUB_ROUTE_SCOPES`:
//! `{"GET /invoices/{id}": "invoices:read", "ANY /public/{proxy+}": null}`.
//! Keys are an HTTP method (or `ANY`) and an API Gateway resource path;
//! values are the scope a key needs, or null for any valid key. With a table,
//! routes not in it are refused; without one, any valid key passes.
//!
//! API Gateway caches an authorizer's policy by the identity source and
//! applies it to every request of that key for the TTL, matching resources
//! with IAM's wildcard rules, where `*` also matches `/`. So a policy here is
//! built for the key, not for the request: Allow for every route the key may
//! call, and an explicit Deny (which beats any Allow) wherever an Allow's
//! wildcard would reach further than its own route.

use std::collections::BTreeMap;

use keyhub::domain::scope::{Scope, Scopes};

/// The methods API Gateway routes; `ANY` stands for those a resource does
/// not declare on its own.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Stands for a path parameter's value in a witness path: no pattern can
/// hold it literally, so only a wildcard matches it.
const PARAM: &str = "\u{1}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteScope {
    /// `None` for `ANY`.
    pub method: Option<String>,
    pub resource: String,
    pub scope: Option<Scope>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteScopes(Vec<RouteScope>);

/// The resources (after `arn:…:api-id/stage/`) a policy allows and denies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Policy {
    /// Whether the policy lets `method path` through, as IAM evaluates it:
    /// an explicit Deny wins, else an Allow is needed.
    pub fn permits(&self, resource: &str) -> bool {
        !self.deny.iter().any(|p| iam_matches(p, resource))
            && self.allow.iter().any(|p| iam_matches(p, resource))
    }
}

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
            if !resource.starts_with('/') || resource.contains(['*', '?']) {
                return Err(format!(
                    "KEYHUB_ROUTE_SCOPES: {route:?} needs a resource path such as /invoices/{{id}}"
                ));
            }
            let method = match method.to_ascii_uppercase().as_str() {
                "ANY" | "*" => None,
                m if METHODS.contains(&m) => Some(m.to_string()),
                m => return Err(format!("KEYHUB_ROUTE_SCOPES: {m:?} is not an HTTP method")),
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

    /// Requests of `route`, one per method it answers and parameter shape,
    /// as `METHOD/path` with every parameter a value no pattern spells out.
    fn witnesses(&self, route: &RouteScope) -> Vec<String> {
        let methods: Vec<&str> = match &route.method {
            Some(m) => vec![m.as_str()],
            None => METHODS
                .into_iter()
                .filter(|m| self.find(m, &route.resource) == Some(route))
                .collect(),
        };
        let one = witness_path(&route.resource, false);
        let many = witness_path(&route.resource, true);
        let mut out = Vec::new();
        for m in methods {
            out.push(format!("{m}{one}"));
            if many != one {
                out.push(format!("{m}{many}"));
            }
        }
        out
    }

    /// Whether `pattern` matches some request of `route`.
    fn reaches(&self, pattern: &str, route: &RouteScope) -> bool {
        self.witnesses(route)
            .iter()
            .any(|w| iam_matches(pattern, w))
    }

    /// The policy for a key holding `scopes`: right for every request of
    /// every route in the table, whichever of them API Gateway applies it
    /// to from its cache (given a table that `check_cacheable` accepts).
    pub fn policy(&self, scopes: &Scopes) -> Policy {
        let (allowed, denied): (Vec<&RouteScope>, Vec<&RouteScope>) =
            self.0.iter().partition(|r| r.allows(scopes));
        let allow: Vec<String> = allowed.iter().map(|r| r.pattern()).collect();
        let reaches_allowed = |p: &str| allowed.iter().any(|a| self.reaches(p, a));
        let mut deny: Vec<String> = Vec::new();
        // A route the key may not call, reached by the wildcard of one it may.
        for d in &denied {
            if allow.iter().any(|p| self.reaches(p, d)) {
                deny.push(d.pattern());
            }
        }
        // A parameter's `*` also matches values with `/` in them, which are
        // requests of deeper routes: deny those where no allowed route lives.
        for a in &allowed {
            for wider in a.overreach() {
                if !reaches_allowed(&wider) && !deny.contains(&wider) {
                    deny.push(wider);
                }
            }
        }
        Policy { allow, deny }
    }

    /// A table whose policies could refuse a key a route it may call: a
    /// route that must be denied whose pattern also covers an allowed route
    /// that another allowed route's pattern reaches into. API Gateway's
    /// cache would then hand out a policy that is wrong for some request, so
    /// an authorizer whose answers are cached refuses to start with it.
    pub fn check_cacheable(&self) -> Result<(), String> {
        let may_differ = |a: &RouteScope, d: &RouteScope| d.scope.is_some() && a.scope != d.scope;
        for d in &self.0 {
            let d_pattern = d.pattern();
            for a in self.0.iter().filter(|a| *a != d && may_differ(a, d)) {
                if !self.reaches(&d_pattern, a) {
                    continue;
                }
                let reached_by = self
                    .0
                    .iter()
                    .filter(|x| *x != d && may_differ(x, d))
                    .find(|x| self.reaches(&x.pattern(), d));
                if let Some(x) = reached_by {
                    return Err(format!(
                        "KEYHUB_ROUTE_SCOPES cannot be cached safely: {} reaches {}, whose \
                         pattern also covers {}, and they need different scopes; give them the \
                         same scope or turn the authorizer cache off",
                        x.label(),
                        d.label(),
                        a.label()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The path with each parameter replaced by `PARAM`, a greedy one by one
/// segment or (`many`) two.
fn witness_path(resource: &str, many: bool) -> String {
    resource
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if name.ends_with('+') && many => format!("{PARAM}/{PARAM}"),
                Some(_) => PARAM.to_string(),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

impl RouteScope {
    pub fn allows(&self, scopes: &Scopes) -> bool {
        self.scope.as_ref().is_none_or(|s| scopes.covers(s))
    }

    fn label(&self) -> String {
        format!(
            "{} {}",
            self.method.as_deref().unwrap_or("ANY"),
            self.resource
        )
    }

    /// The execute-api resource pattern of this route after `api-id/stage/`:
    /// `GET/invoices/*`. Path parameters and `ANY` become `*`.
    pub fn pattern(&self) -> String {
        let path: Vec<&str> = self
            .resource
            .split('/')
            .map(|seg| if seg.starts_with('{') { "*" } else { seg })
            .collect();
        format!(
            "{}{}",
            self.method.as_deref().unwrap_or("*"),
            path.join("/")
        )
    }

    /// The execute-api resource for this route under `base`
    /// (`arn:…:api-id/stage`).
    pub fn arn(&self, base: &str) -> String {
        format!("{base}/{}", self.pattern())
    }

    /// Patterns for what this route's pattern matches beyond its own
    /// requests: each single-segment `*` (a parameter, or `ANY`'s method)
    /// standing for a value with a `/` in it.
    fn overreach(&self) -> Vec<String> {
        let mut segments: Vec<(String, bool)> = vec![(
            self.method.clone().unwrap_or_else(|| "*".to_string()),
            self.method.is_none(),
        )];
        for seg in self.resource.split('/').skip(1) {
            let greedy = seg.ends_with("+}");
            let param = seg.starts_with('{');
            segments.push((
                if param {
                    "*".to_string()
                } else {
                    seg.to_string()
                },
                param && !greedy,
            ));
        }
        (0..segments.len())
            .filter(|&i| segments[i].1)
            .map(|i| {
                segments
                    .iter()
                    .enumerate()
                    .map(|(j, (s, _))| if j == i { "*/*" } else { s.as_str() })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    }
}

/// IAM's resource matching: `*` matches any run of characters (`/`
/// included), `?` any one character, everything else itself.
pub fn iam_matches(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, vi));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == v[vi] => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    pi = sp + 1;
                    vi = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &[&str]) -> Scopes {
        Scopes::parse_all(s.iter().copied()).unwrap()
    }

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
    fn patterns_wildcard_parameters_and_any() {
        let t =
            RouteScopes::parse(r#"{"GET /invoices/{id}": null, "ANY /p/{proxy+}": null}"#).unwrap();
        let base = "arn:aws:execute-api:us-east-1:1:api/v1";
        let arns: Vec<String> = t.iter().map(|r| r.arn(base)).collect();
        assert!(arns.contains(&format!("{base}/GET/invoices/*")));
        assert!(arns.contains(&format!("{base}/*/p/*")));
    }

    #[test]
    fn iam_wildcards_cross_slashes() {
        assert!(iam_matches("GET/invoices/*", "GET/invoices/1/refunds"));
        assert!(iam_matches("*/x/*", "GET/x/1"));
        assert!(iam_matches("GET/a?c", "GET/abc"));
        assert!(!iam_matches("GET/a?c", "GET/ac"));
        assert!(!iam_matches("GET/invoices", "GET/invoices/1"));
        assert!(iam_matches("*", ""));
        assert!(!iam_matches("POST/*", "GET/x"));
    }

    /// Every concrete request of every route, judged by the policy, gets
    /// what a fresh authorizer call would give it.
    fn assert_exact(table: &str, held: &[&str]) {
        let t = RouteScopes::parse(table).unwrap();
        let s = scopes(held);
        let policy = t.policy(&s);
        for r in t.iter() {
            for method in METHODS {
                if t.find(method, &r.resource) != Some(r) {
                    continue;
                }
                for value in ["1", "a-b", "x.y"] {
                    let path = r
                        .resource
                        .split('/')
                        .map(|seg| if seg.starts_with('{') { value } else { seg })
                        .collect::<Vec<_>>()
                        .join("/");
                    let request = format!("{method}{path}");
                    assert_eq!(
                        policy.permits(&request),
                        r.allows(&s),
                        "{request} with {held:?}: {policy:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn nested_routes_and_any_are_exact_for_every_key() {
        let table = r#"{
            "GET /invoices/{id}": "invoices:read",
            "GET /invoices/{id}/refunds": "refunds:read",
            "ANY /x/{id}": "x:write",
            "GET /x/{id}": "x:read",
            "GET /x/{id}/y/{z}": "x:read",
            "GET /health": null
        }"#;
        RouteScopes::parse(table)
            .unwrap()
            .check_cacheable()
            .unwrap();
        for held in [
            &["invoices:read"][..],
            &["refunds:read"],
            &["x:write"],
            &["x:read"],
            &["invoices:read", "x:write"],
            &["*"],
            &["other:thing"],
        ] {
            assert_exact(table, held);
        }
    }

    #[test]
    fn a_wildcard_allow_does_not_reach_unlisted_deeper_paths() {
        let t = RouteScopes::parse(r#"{"GET /invoices/{id}": "invoices:read"}"#).unwrap();
        let p = t.policy(&scopes(&["invoices:read"]));
        assert!(p.permits("GET/invoices/1"));
        assert!(!p.permits("GET/invoices/1/refunds"));
        assert!(!p.permits("GET/invoices/1/refunds/2"));
        assert!(!p.permits("POST/invoices/1"));
    }

    #[test]
    fn a_key_without_the_scope_keeps_its_other_routes() {
        let t = RouteScopes::parse(r#"{"GET /a": "a:read", "GET /b": "b:read"}"#).unwrap();
        let p = t.policy(&scopes(&["a:read"]));
        assert!(p.permits("GET/a"));
        assert!(!p.permits("GET/b"));
    }

    #[test]
    fn tables_that_cannot_be_cached_safely_are_named() {
        let t = RouteScopes::parse(
            r#"{"GET /a/{x}": "s:one", "GET /a/{x}/b/{y}": "s:two", "GET /a/{x}/b/{y}/c": "s:one"}"#,
        )
        .unwrap();
        let e = t.check_cacheable().unwrap_err();
        assert!(e.contains("GET /a/{x}/b/{y}"), "{e}");
    }

    #[test]
    fn bad_tables_are_refused() {
        for bad in [
            "[1]",
            r#"{"GET": null}"#,
            r#"{"GET invoices": null}"#,
            r#"{"GET /x": "Bad Scope"}"#,
            r#"{"FETCH /x": null}"#,
            r#"{"GET /x/*": null}"#,
        ] {
            assert!(RouteScopes::parse(bad).is_err(), "{bad}");
        }
        assert!(RouteScopes::parse("").unwrap().is_empty());
    }
}
