//! The route table: every route of the management API with the scope it
//! needs. The API's router, the local gateway, template.yaml and openapi.yaml
//! are all checked against this one list.

use std::collections::HashMap;

use http::Method;

#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// The API Gateway resource path, with `{name}` for path parameters.
    pub path: &'static str,
    /// The scope a key needs; `None` means any valid key.
    pub scope: Option<&'static str>,
    /// Whether a call counts against the caller's rate limits (every route
    /// with a key does).
    pub metered: bool,
    /// Answered without a key (no guard, no metering): the health check,
    /// which a status page calls.
    pub public: bool,
    /// Deployed in template.yaml as its resource's `ANY` method alone, the
    /// function telling the methods apart (as for the console): one Lambda
    /// permission instead of two, since the API function's resource policy
    /// (20 KB) is nearly full.
    pub any_only: bool,
}

const fn route(method: Method, path: &'static str, scope: Option<&'static str>) -> Route {
    Route {
        method,
        path,
        scope,
        metered: true,
        public: false,
        any_only: false,
    }
}

/// A route deployed as its resource's `ANY` method alone (`any_only`).
const fn any_only(method: Method, path: &'static str, scope: Option<&'static str>) -> Route {
    let mut r = route(method, path, scope);
    r.any_only = true;
    r
}

/// A route that needs no key.
const fn public(method: Method, path: &'static str) -> Route {
    Route {
        method,
        path,
        scope: None,
        metered: false,
        public: true,
        any_only: false,
    }
}

pub const ROUTES: &[Route] = &[
    route(Method::POST, "/api/v1/accounts", Some("accounts:write")),
    route(Method::GET, "/api/v1/accounts/{id}", Some("accounts:write")),
    route(
        Method::PATCH,
        "/api/v1/accounts/{id}",
        Some("accounts:write"),
    ),
    route(Method::POST, "/api/v1/api-keys", Some("keys:write")),
    route(Method::GET, "/api/v1/api-keys", Some("keys:read")),
    // Before `/api-keys/{id}`, and matched before it (a static segment wins,
    // as in API Gateway): "bulk" is no key id.
    any_only(Method::POST, "/api/v1/api-keys/bulk", Some("keys:write")),
    route(Method::GET, "/api/v1/api-keys/{id}", Some("keys:read")),
    route(Method::PUT, "/api/v1/api-keys/{id}", Some("keys:write")),
    route(Method::PATCH, "/api/v1/api-keys/{id}", Some("keys:write")),
    route(Method::DELETE, "/api/v1/api-keys/{id}", Some("keys:write")),
    route(
        Method::POST,
        "/api/v1/api-keys/{id}/rotate",
        Some("keys:write"),
    ),
    route(
        Method::GET,
        "/api/v1/api-keys/{id}/usage",
        Some("usage:read"),
    ),
    route(Method::GET, "/api/v1/dashboard/stats", Some("usage:read")),
    route(Method::GET, "/api/v1/dashboard/usage", Some("usage:read")),
    route(Method::POST, "/api/v1/webhooks", Some("webhooks:write")),
    route(Method::GET, "/api/v1/webhooks", Some("webhooks:read")),
    route(Method::GET, "/api/v1/webhooks/{id}", Some("webhooks:read")),
    route(Method::PUT, "/api/v1/webhooks/{id}", Some("webhooks:write")),
    route(
        Method::DELETE,
        "/api/v1/webhooks/{id}",
        Some("webhooks:write"),
    ),
    route(
        Method::POST,
        "/api/v1/webhooks/{id}/rotate-secret",
        Some("webhooks:write"),
    ),
    route(
        Method::POST,
        "/api/v1/webhooks/{id}/test",
        Some("webhooks:write"),
    ),
    route(
        Method::GET,
        "/api/v1/webhooks/{id}/deliveries",
        Some("webhooks:read"),
    ),
    route(
        Method::GET,
        "/api/v1/webhooks/{id}/deliveries/{delivery_id}",
        Some("webhooks:read"),
    ),
    route(
        Method::POST,
        "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        Some("webhooks:write"),
    ),
    route(Method::GET, "/api/v1/whoami", None),
    // Metered against the calling service too, so a leaked service key
    // cannot turn verify into an unbounded lookup oracle; the verified key
    // is metered by the endpoint itself.
    route(Method::POST, "/api/v1/keys/verify", Some("keys:verify")),
    public(Method::GET, "/api/v1/health"),
];

/// The route for a method and an API Gateway resource path, as API Gateway
/// puts it in `requestContext.resourcePath`.
pub fn by_resource(method: &Method, resource: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.method == *method && r.path == resource)
}

/// Matches a concrete path (`/api/v1/api-keys/key_1`) the way API Gateway does,
/// returning the route and its path parameters: a resource with a static
/// segment where another has a parameter wins (`/api-keys/bulk` over
/// `/api-keys/{id}`), whatever the method.
pub fn find(method: &Method, path: &str) -> Option<(&'static Route, HashMap<String, String>)> {
    let resource = resource_of(path)?;
    ROUTES
        .iter()
        .find(|r| r.method == *method && r.path == resource)
        .and_then(|r| match_path(r.path, path).map(|params| (r, params)))
}

/// The resource path API Gateway would pick for a concrete path: of the
/// matching ones, the one with the most static segments.
fn resource_of(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .filter(|r| match_path(r.path, path).is_some())
        .max_by_key(|r| r.path.split('/').filter(|s| !s.starts_with('{')).count())
        .map(|r| r.path)
}

/// Whether any route has this path, whatever its method.
pub fn path_exists(path: &str) -> bool {
    resource_of(path).is_some()
}

/// The methods of a resource path (`/api/v1/api-keys/{id}`), in the route
/// table's order: what a 405 lists in `Allow`. Empty for an unknown path.
pub fn methods_of_resource(resource: &str) -> Vec<&'static Method> {
    ROUTES
        .iter()
        .filter(|r| r.path == resource)
        .map(|r| &r.method)
        .collect()
}

/// The methods of the route that matches a concrete path, as
/// `methods_of_resource`.
pub fn methods_of_path(path: &str) -> Vec<&'static Method> {
    resource_of(path)
        .map(methods_of_resource)
        .unwrap_or_default()
}

/// The resource paths of the route table, each once: API Gateway's
/// resources, each of which gets an `ANY` method in template.yaml so that a
/// method it lacks reaches the API (405) instead of API Gateway (404).
pub fn resources() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in ROUTES {
        if !out.contains(&r.path) {
            out.push(r.path);
        }
    }
    out
}

fn match_path(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => {
                if let Some(name) = ts.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                    if ps.is_empty() {
                        return None;
                    }
                    params.insert(name.to_string(), ps.to_string());
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_routes_and_parameters() {
        let (r, params) = find(&Method::GET, "/api/v1/api-keys/key_abc").unwrap();
        assert_eq!(r.path, "/api/v1/api-keys/{id}");
        assert_eq!(params["id"], "key_abc");
        let (r, _) = find(&Method::POST, "/api/v1/api-keys/key_abc/rotate").unwrap();
        assert_eq!(r.scope, Some("keys:write"));
        assert!(find(&Method::POST, "/api/v1/whoami").is_none());
        assert!(path_exists("/api/v1/whoami"));
        assert!(find(&Method::GET, "/api/v1/api-keys//rotate").is_none());
        assert!(find(&Method::GET, "/api/v1/nothing").is_none());
        assert!(!path_exists("/api/v1/api-keys/a/b/c"));
        // A static segment wins over a parameter, whatever the method.
        let (r, params) = find(&Method::POST, "/api/v1/api-keys/bulk").unwrap();
        assert_eq!(r.path, "/api/v1/api-keys/bulk");
        assert!(params.is_empty());
        assert!(find(&Method::GET, "/api/v1/api-keys/bulk").is_none());
        assert_eq!(methods_of_path("/api/v1/api-keys/bulk"), [&Method::POST]);
    }

    #[test]
    fn methods_of_a_path_are_what_a_405_allows() {
        let of =
            |p: &str| -> Vec<String> { methods_of_path(p).iter().map(|m| m.to_string()).collect() };
        assert_eq!(
            of("/api/v1/api-keys/key_x"),
            ["GET", "PUT", "PATCH", "DELETE"]
        );
        assert_eq!(of("/api/v1/whoami"), ["GET"]);
        assert!(of("/api/v1/nothing").is_empty());
        assert_eq!(
            methods_of_resource("/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"),
            [&Method::POST]
        );
        // Each path once, however many methods it has.
        let resources = resources();
        let unique: std::collections::HashSet<_> = resources.iter().collect();
        assert_eq!(unique.len(), resources.len());
        assert!(resources.len() < ROUTES.len());
        assert!(ROUTES.iter().all(|r| resources.contains(&r.path)));
    }

    #[test]
    fn every_route_is_unique_and_has_a_valid_scope() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{a:?} twice");
            }
            if let Some(s) = a.scope {
                crate::domain::scope::Scope::parse(s).unwrap();
            }
            assert_eq!(by_resource(&a.method, a.path), Some(a));
            if a.public {
                assert!(a.scope.is_none() && !a.metered, "{a:?} needs no key");
            }
        }
    }
}
