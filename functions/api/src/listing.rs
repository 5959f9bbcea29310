//! Listing an account's keys: filters, sort orders, and two ways of paging
//! (page numbers, or an opaque cursor that survives inserts and deletes).
//!
//! The account's keys are read with one paginated Query and ordered here, so
//! every sort order is exact and `total` is known. Pure functions only.

use std::cmp::Ordering;
use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyhub::ApiError;
use keyhub::apikey::Environment;
use keyhub::key::KeyRecord;
use keyhub::time;
use serde::{Deserialize, Serialize};

pub const DEFAULT_SIZE: usize = 10;
pub const MAX_SIZE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    CreatedAt,
    Name,
    LastUsed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

/// What a list shows, whichever page of it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    sort: SortField,
    order: Order,
    is_active: Option<bool>,
    environment: Option<Environment>,
}

/// A cursor: the view and the sort position of the last key handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    view: View,
    after: (String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    Page(usize),
    Cursor(Option<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub view: View,
    pub paging: Paging,
    pub size: usize,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(field, "invalid_value", message)
}

fn parse_number(field: &str, v: &str, min: usize, max: usize) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            bad(
                field,
                format!("{field} must be a whole number from {min} to {max}"),
            )
        })
}

impl ListQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        const KNOWN: [&str; 8] = [
            "page",
            "size",
            "per_page",
            "cursor",
            "is_active",
            "environment",
            "sort",
            "order",
        ];
        if let Some(unknown) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::invalid(
                unknown.as_str(),
                "unknown_parameter",
                format!(
                    "unknown query parameter '{unknown}'; known: {}",
                    KNOWN.join(", ")
                ),
            ));
        }
        let size = match (q.get("size"), q.get("per_page")) {
            (Some(_), Some(_)) => return Err(bad("per_page", "give size or per_page, not both")),
            (Some(v), None) => parse_number("size", v, 1, MAX_SIZE)?,
            (None, Some(v)) => parse_number("per_page", v, 1, MAX_SIZE)?,
            (None, None) => DEFAULT_SIZE,
        };
        let sort = match q.get("sort").map(String::as_str) {
            None | Some("created_at") => SortField::CreatedAt,
            Some("name") => SortField::Name,
            Some("last_used") => SortField::LastUsed,
            Some(_) => return Err(bad("sort", "sort must be created_at, name or last_used")),
        };
        let order = match q.get("order").map(String::as_str) {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(_) => return Err(bad("order", "order must be asc or desc")),
        };
        let is_active = match q.get("is_active").map(String::as_str) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(bad("is_active", "is_active must be true or false")),
        };
        let environment = match q.get("environment") {
            None => None,
            Some(v) => Some(
                Environment::parse(v)
                    .ok_or_else(|| bad("environment", "environment must be live or test"))?,
            ),
        };
        let view = View {
            sort,
            order,
            is_active,
            environment,
        };
        let paging = match (q.get("page"), q.get("cursor")) {
            (Some(_), Some(_)) => return Err(bad("cursor", "give page or cursor, not both")),
            (Some(p), None) => Paging::Page(parse_number("page", p, 1, 1_000_000)?),
            (None, Some(c)) if c.is_empty() => Paging::Cursor(None),
            (None, Some(c)) => {
                let cursor = decode_cursor(c)?;
                // The cursor carries its view; parameters given beside it must agree.
                let given = |k: &str| q.contains_key(k);
                let clash = (given("sort") && cursor.view.sort != view.sort)
                    || (given("order") && cursor.view.order != view.order)
                    || (given("is_active") && cursor.view.is_active != view.is_active)
                    || (given("environment") && cursor.view.environment != view.environment);
                if clash {
                    return Err(bad(
                        "cursor",
                        "the cursor belongs to another sort order or filter",
                    ));
                }
                return Ok(ListQuery {
                    view: cursor.view,
                    paging: Paging::Cursor(Some(cursor.after)),
                    size,
                });
            }
            (None, None) => Paging::Page(1),
        };
        Ok(ListQuery { view, paging, size })
    }
}

fn decode_cursor(s: &str) -> Result<Cursor, ApiError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| bad("cursor", "cursor is not one this API handed out"))
}

fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

/// The position of a key in a sort order: the field, then the id, so that
/// no two keys tie.
fn sort_key(k: &KeyRecord, field: SortField) -> (String, String) {
    let primary = match field {
        SortField::CreatedAt => time::format(&k.created_at),
        SortField::Name => k.name.to_lowercase(),
        SortField::LastUsed => k.last_used.as_ref().map(time::format).unwrap_or_default(),
    };
    (primary, k.id.clone())
}

#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<KeyRecord>,
    pub total: usize,
    pub page: Option<usize>,
    pub size: usize,
    pub total_pages: usize,
    pub has_next: bool,
    pub next_cursor: Option<String>,
}

pub fn paginate(keys: Vec<KeyRecord>, q: &ListQuery) -> ListPage {
    let v = q.view;
    let mut keyed: Vec<((String, String), KeyRecord)> = keys
        .into_iter()
        .filter(|k| v.is_active.is_none_or(|a| k.is_active == a))
        .filter(|k| v.environment.is_none_or(|e| k.environment == e))
        .map(|k| (sort_key(&k, v.sort), k))
        .collect();
    let cmp = |a: &(String, String), b: &(String, String)| match v.order {
        Order::Asc => a.cmp(b),
        Order::Desc => b.cmp(a),
    };
    keyed.sort_by(|a, b| cmp(&a.0, &b.0));
    let total = keyed.len();
    let start = match &q.paging {
        Paging::Page(p) => (p - 1).saturating_mul(q.size).min(total),
        Paging::Cursor(None) => 0,
        Paging::Cursor(Some(after)) => keyed
            .iter()
            .position(|(k, _)| cmp(k, after) == Ordering::Greater)
            .unwrap_or(total),
    };
    let end = start.saturating_add(q.size).min(total);
    let has_next = end < total;
    let next_cursor = (has_next && end > start).then(|| {
        encode_cursor(&Cursor {
            view: v,
            after: keyed[end - 1].0.clone(),
        })
    });
    let items = keyed.drain(start..end).map(|(_, k)| k).collect();
    ListPage {
        items,
        total,
        page: match q.paging {
            Paging::Page(p) => Some(p),
            Paging::Cursor(_) => None,
        },
        size: q.size,
        total_pages: total.div_ceil(q.size),
        has_next,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, ApiError> {
        ListQuery::parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::InvalidRequest { field, .. } => field.unwrap_or_default(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let lq = q(&[]).unwrap();
        assert_eq!(lq.size, DEFAULT_SIZE);
        assert_eq!(lq.paging, Paging::Page(1));
        assert_eq!(lq.view.sort, SortField::CreatedAt);
        assert_eq!(lq.view.order, Order::Desc);
        assert_eq!(q(&[("per_page", "100")]).unwrap().size, 100);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (pairs, field) in [
            (vec![("size", "0")], "size"),
            (vec![("size", "101")], "size"),
            (vec![("per_page", "x")], "per_page"),
            (vec![("size", "5"), ("per_page", "5")], "per_page"),
            (vec![("page", "0")], "page"),
            (vec![("page", "-1")], "page"),
            (vec![("sort", "id")], "sort"),
            (vec![("order", "up")], "order"),
            (vec![("is_active", "yes")], "is_active"),
            (vec![("environment", "prod")], "environment"),
            (vec![("cursor", "!!")], "cursor"),
            (vec![("page", "2"), ("cursor", "")], "cursor"),
            (vec![("sise", "5")], "sise"),
        ] {
            assert_eq!(field_of(q(&pairs).unwrap_err()), field, "{pairs:?}");
        }
    }
}
