//! The console: a static page over the JSON API, served by this function at
//! `/console` so that it shares the API's origin (no CORS, no second
//! deployment). The files in `functions/api/console/` are compiled into the
//! binary; each asset is served under a name carrying a hash of its content,
//! cached for a year, so a new deployment is picked up by the next page load
//! and never mixed with an old file. The page itself is never cached.

use std::sync::LazyLock;

use keyhub::ApiError;
use keyhub::http::request;
use lambda_http::http::{HeaderValue, Method, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

/// The console's API Gateway resources (template.yaml declares `ANY` on
/// each, so that the function answers other methods 405).
pub const PATHS: &[&str] = &["/console", "/console/{asset}"];

/// Only same-origin files, no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An asset's immutable caching: its name changes whenever its content does.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Source {
    name: &'static str,
    content_type: &'static str,
    text: &'static str,
}

/// The assets, each after the ones it names: a file's hashed name covers
/// the hashed names of what it imports, so a change anywhere renames every
/// file that leads to it.
const SOURCES: &[Source] = &[
    Source {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        text: include_str!("../console/console.css"),
    },
    Source {
        name: "icon.svg",
        content_type: "image/svg+xml",
        text: include_str!("../console/icon.svg"),
    },
    Source {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("../console/api.js"),
    },
    Source {
        name: "ui.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("../console/ui.js"),
    },
    Source {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("../console/charts.js"),
    },
    Source {
        name: "pages.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("../console/pages.js"),
    },
    Source {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("../console/app.js"),
    },
];

const PAGE: &str = include_str!("../console/index.html");

pub struct Asset {
    /// The name it is served under: `app.3f2a9c0d1e4b5a67.js`.
    pub name: String,
    pub content_type: &'static str,
    pub body: String,
}

pub struct Bundle {
    pub page: String,
    pub assets: Vec<Asset>,
}

/// The page and the assets with every reference to a file replaced by its
/// hashed name; built once per cold start (microseconds).
pub fn bundle() -> &'static Bundle {
    static BUNDLE: LazyLock<Bundle> = LazyLock::new(build);
    &BUNDLE
}

fn build() -> Bundle {
    let mut assets: Vec<Asset> = Vec::with_capacity(SOURCES.len());
    let mut renames: Vec<(&str, String)> = Vec::new();
    for source in SOURCES {
        let body = rewrite(source.text, &renames);
        let name = hashed_name(source.name, &body);
        renames.push((source.name, name.clone()));
        assets.push(Asset {
            name,
            content_type: source.content_type,
            body,
        });
    }
    Bundle {
        page: rewrite(PAGE, &renames),
        assets,
    }
}

/// References are written `"./api.js"` in modules and `"console/app.js"` in
/// the page: a file name after a slash, in quotes.
fn rewrite(text: &str, renames: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in renames {
        for quote in ['"', '\''] {
            out = out.replace(&format!("/{from}{quote}"), &format!("/{to}{quote}"));
        }
    }
    out
}

fn hashed_name(name: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hash = hex::encode(&digest[..8]);
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

/// The console's answer to `req`, or `None` when `req` is not for the
/// console (the API's routes handle it). With the console turned off its
/// paths answer as unknown routes do.
pub fn serve(req: &Request, enabled: bool, request_id: &str) -> Option<Response<Body>> {
    let target = target(req)?;
    if !enabled {
        return Some(request::error(
            &ApiError::NotFound { what: "route" },
            request_id,
        ));
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Some(request::error(
            &ApiError::MethodNotAllowed {
                allow: "GET, HEAD".to_string(),
            },
            request_id,
        ));
    }
    let bundle = bundle();
    let (body, content_type, cache) = match target {
        Target::Page => (
            bundle.page.as_str(),
            "text/html; charset=utf-8",
            // Always revalidated: it names the current assets.
            "no-cache",
        ),
        Target::Asset(name) => match bundle.assets.iter().find(|a| a.name == name) {
            Some(a) => (a.body.as_str(), a.content_type, IMMUTABLE),
            None => {
                return Some(request::error(
                    &ApiError::NotFound {
                        what: "console file",
                    },
                    request_id,
                ));
            }
        },
    };
    let mut resp = Response::new(Body::Text(if head {
        String::new()
    } else {
        body.to_string()
    }));
    let headers = resp.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(request::REQUEST_ID_HEADER, v);
    }
    Some(resp)
}

enum Target {
    Page,
    Asset(String),
}

/// What a request asks of the console: by API Gateway's resource path when
/// there is one, else by the raw path (`/console`, `/console/<file>`).
fn target(req: &Request) -> Option<Target> {
    match request::resource(req) {
        Some((resource, params)) => match resource.as_str() {
            "/console" => Some(Target::Page),
            "/console/{asset}" => Some(Target::Asset(
                params.get("asset").cloned().unwrap_or_default(),
            )),
            _ => None,
        },
        None => {
            let path = req.uri().path();
            if path == "/console" {
                return Some(Target::Page);
            }
            let file = path.strip_prefix("/console/")?;
            (!file.is_empty() && !file.contains('/')).then(|| Target::Asset(file.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_to_a_file_is_to_its_hashed_name() {
        let b = bundle();
        for (source, asset) in SOURCES.iter().zip(&b.assets) {
            assert_ne!(asset.name, source.name);
            let texts =
                std::iter::once(b.page.as_str()).chain(b.assets.iter().map(|a| &a.body[..]));
            for text in texts {
                for quote in ['"', '\''] {
                    assert!(
                        !text.contains(&format!("/{}{quote}", source.name)),
                        "{} is named unhashed",
                        source.name
                    );
                }
            }
        }
        let app = b.assets.last().map(|a| a.name.as_str()).unwrap_or_default();
        assert!(b.page.contains(&format!("\"console/{app}\"")));
    }

    #[test]
    fn a_change_to_a_module_renames_those_that_import_it() {
        let a = rewrite("import './api.js';", &[("api.js", "api.1.js".into())]);
        let b = rewrite("import './api.js';", &[("api.js", "api.2.js".into())]);
        assert_ne!(hashed_name("app.js", &a), hashed_name("app.js", &b));
        assert_eq!(hashed_name("app.js", &a), hashed_name("app.js", &a));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = &bundle().page;
        assert!(!page.contains("<style"));
        assert!(!page.contains("style="));
        let handler = page.match_indices(" on").any(|(i, _)| {
            let rest = &page[i + 3..];
            let n = rest.chars().take_while(char::is_ascii_lowercase).count();
            n > 0 && rest[n..].starts_with('=')
        });
        assert!(!handler, "no inline event handlers");
        for tag in page.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or("");
            assert!(open.contains("src="), "inline script: <script{open}>");
        }
    }
}
