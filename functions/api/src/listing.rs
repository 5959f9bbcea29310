//! Listing an account's keys: filters, sort orders, and two ways of paging
//! (page numbers, or an opaque cursor that survives inserts and deletes).
//!
//! The account's keys are read with one paginated Query and ordered here, so
//! every sort order is exact and `total` is known. Pure functions only.

use std::cmp::Ordering;
use std::collections::HashMap;

use keyhub::ApiError;
use keyhub::domain::apikey::Environment;
use keyhub::domain::key::KeyRecord;
use keyhub::domain::time;

pub const DEFAULT_SIZE: usize = 10;
pub const MAX_SIZE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    Name,
    LastUsed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// What a list shows, whichever page of it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    sort: SortField,
    order: Order,
    is_active: Option<bool>,
    environment: Option<Environment>,
}

/// The position of a key in a sort order: the sort field's value (as bytes),
/// then the key id, so that no two keys tie.
type Position = (Vec<u8>, String);

/// A cursor: the view and the position of the last key handed out, written
/// `sort.order.is_active.environment.hex(value).key_id`, e.g.
/// `name.asc.all.live.62696c6c696e67.key_2sgXOxqc3QhsmIEJ5vB6iQ`, so that
/// openapi.yaml can state its grammar and every string it allows means a
/// position (the first key after it), whether or not this API made it. A
/// search (`q`) adds `.hex(search)`, so that every page of it keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    view: View,
    after: Position,
    search: Option<Search>,
}

/// A search: the lowercased bytes a key's lowercased name, id or prefix
/// must contain. Bytes rather than text, so that any cursor's hex reads back as
/// the search it names.
pub type Search = Vec<u8>;

/// Characters a `q` may have: a name's length.
const MAX_SEARCH_CHARS: usize = 100;

fn matches(k: &KeyRecord, search: &[u8]) -> bool {
    [&k.name, &k.id, &k.prefix].iter().any(|field| {
        let field = field.to_lowercase();
        field.as_bytes().windows(search.len()).any(|w| w == search)
    })
}

/// Bytes of a sort value a cursor may carry: names are at most 100
/// characters, which lowercasing can make at most 1,200 bytes.
const MAX_POSITION_BYTES: usize = 1200;

impl Cursor {
    fn parse(s: &str) -> Option<Cursor> {
        let mut parts = s.split('.');
        let mut next = || parts.next();
        let sort = match next()? {
            "created_at" => SortField::CreatedAt,
            "name" => SortField::Name,
            "last_used" => SortField::LastUsed,
            _ => return None,
        };
        let order = match next()? {
            "asc" => Order::Asc,
            "desc" => Order::Desc,
            _ => return None,
        };
        let is_active = match next()? {
            "all" => None,
            "true" => Some(true),
            "false" => Some(false),
            _ => return None,
        };
        let environment = match next()? {
            "all" => None,
            e => Some(Environment::parse(e)?),
        };
        let value = unhex(next()?)?;
        let id = next()?;
        let id_ok = id
            .strip_prefix("key_")
            .is_some_and(|d| d.len() == 22 && d.bytes().all(|b| b.is_ascii_alphanumeric()));
        let search = match next() {
            None => None,
            Some(h) => Some(unhex(h).filter(|s| !s.is_empty() && s.len() <= MAX_POSITION_BYTES)?),
        };
        if !id_ok || next().is_some() || value.len() > MAX_POSITION_BYTES {
            return None;
        }
        Some(Cursor {
            view: View {
                sort,
                order,
                is_active,
                environment,
            },
            after: (value, id.to_string()),
            search,
        })
    }

    fn encode(&self) -> String {
        let v = self.view;
        let sort = match v.sort {
            SortField::CreatedAt => "created_at",
            SortField::Name => "name",
            SortField::LastUsed => "last_used",
        };
        let order = match v.order {
            Order::Asc => "asc",
            Order::Desc => "desc",
        };
        let active = match v.is_active {
            None => "all",
            Some(true) => "true",
            Some(false) => "false",
        };
        let env = v.environment.map_or("all", |e| e.as_str());
        let (value, id) = &self.after;
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let value = hex(value);
        match &self.search {
            Some(search) => format!("{sort}.{order}.{active}.{env}.{value}.{id}.{}", hex(search)),
            None => format!("{sort}.{order}.{active}.{env}.{value}.{id}"),
        }
    }
}

/// Lowercase hex, as [`Cursor::encode`] writes it.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    Page(usize),
    Cursor(Option<Position>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub view: View,
    pub paging: Paging,
    pub size: usize,
    /// Only keys whose name, id or prefix contains this (`q`,
    /// case-insensitive).
    pub search: Option<Search>,
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
    /// Every parameter given must be valid on its own. Where two say the same
    /// thing, one wins, as openapi.yaml states: `size` over `per_page`,
    /// `is_active` over `status`, and a cursor over `page`, `sort`, `order`,
    /// `is_active`, `status` and `environment` (a cursor carries the view
    /// it was made in).
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        const KNOWN: &[&str] = &[
            "page",
            "size",
            "per_page",
            "cursor",
            "is_active",
            "status",
            "environment",
            "sort",
            "order",
            "q",
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
        let size = q
            .get("size")
            .map(|v| parse_number("size", v, 1, MAX_SIZE))
            .transpose()?;
        let per_page = q
            .get("per_page")
            .map(|v| parse_number("per_page", v, 1, MAX_SIZE))
            .transpose()?;
        let size = size.or(per_page).unwrap_or(DEFAULT_SIZE);
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
        // The product documents' name for the same filter.
        let status = match q.get("status").map(String::as_str) {
            None => None,
            Some("active") => Some(true),
            Some("inactive") => Some(false),
            Some(_) => return Err(bad("status", "status must be active or inactive")),
        };
        let is_active = is_active.or(status);
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
        let page = q
            .get("page")
            .map(|p| parse_number("page", p, 1, 1_000_000))
            .transpose()?;
        let search = match q.get("q").map(|s| s.trim()) {
            None | Some("") => None,
            Some(s) if s.chars().count() > MAX_SEARCH_CHARS => {
                return Err(bad(
                    "q",
                    format!("q must be at most {MAX_SEARCH_CHARS} characters"),
                ));
            }
            Some(s) => Some(s.to_lowercase().into_bytes()),
        };
        Ok(match q.get("cursor").map(String::as_str) {
            Some("") => ListQuery {
                view,
                paging: Paging::Cursor(None),
                size,
                search,
            },
            Some(c) => {
                let cursor = Cursor::parse(c).ok_or_else(|| {
                    bad(
                        "cursor",
                        "cursor must be empty or a next_cursor this API handed out",
                    )
                })?;
                ListQuery {
                    view: cursor.view,
                    paging: Paging::Cursor(Some(cursor.after)),
                    size,
                    search: cursor.search,
                }
            }
            None => ListQuery {
                view,
                paging: Paging::Page(page.unwrap_or(1)),
                size,
                search,
            },
        })
    }
}

fn sort_key(k: &KeyRecord, field: SortField) -> Position {
    let primary = match field {
        SortField::CreatedAt => time::format(&k.created_at),
        SortField::Name => k.name.to_lowercase(),
        SortField::LastUsed => k.last_used.as_ref().map(time::format).unwrap_or_default(),
    };
    (primary.into_bytes(), k.id.clone())
}

#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<KeyRecord>,
    pub total: usize,
    pub page: Option<usize>,
    pub size: usize,
    pub total_pages: usize,
    pub has_next: bool,
    /// Whether keys of this view come before this page's first position.
    pub has_previous: bool,
    pub next_cursor: Option<String>,
}

pub fn paginate(keys: Vec<KeyRecord>, q: &ListQuery) -> ListPage {
    let v = q.view;
    let mut keyed: Vec<(Position, KeyRecord)> = keys
        .into_iter()
        .filter(|k| v.is_active.is_none_or(|a| k.is_active == a))
        .filter(|k| v.environment.is_none_or(|e| k.environment == e))
        .filter(|k| q.search.as_deref().is_none_or(|s| matches(k, s)))
        .map(|k| (sort_key(&k, v.sort), k))
        .collect();
    let cmp = |a: &Position, b: &Position| match v.order {
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
        Cursor {
            view: v,
            after: keyed[end - 1].0.clone(),
            search: q.search.clone(),
        }
        .encode()
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
        has_previous: start > 0,
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
            (vec![("size", "5"), ("per_page", "0")], "per_page"),
            (vec![("page", "0")], "page"),
            (vec![("page", "-1")], "page"),
            (vec![("sort", "id")], "sort"),
            (vec![("order", "up")], "order"),
            (vec![("is_active", "yes")], "is_active"),
            (vec![("status", "true")], "status"),
            (vec![("is_active", "true"), ("status", "revoked")], "status"),
            (vec![("environment", "prod")], "environment"),
            (vec![("cursor", "!!")], "cursor"),
            (vec![("page", "0"), ("cursor", "")], "page"),
            (
                vec![("cursor", "name.asc.all.all.6.key_2sgXOxqc3QhsmIEJ5vB6iQ")],
                "cursor",
            ),
            (
                vec![("cursor", "name.asc.all.all.6A.key_2sgXOxqc3QhsmIEJ5vB6iQ")],
                "cursor",
            ),
            (
                vec![("cursor", "name.up.all.all..key_2sgXOxqc3QhsmIEJ5vB6iQ")],
                "cursor",
            ),
            (vec![("cursor", "name.asc.all.all..key_x")], "cursor"),
            (vec![("sise", "5")], "sise"),
        ] {
            assert_eq!(field_of(q(&pairs).unwrap_err()), field, "{pairs:?}");
        }
    }

    #[test]
    fn one_parameter_wins_where_two_say_the_same() {
        assert_eq!(q(&[("size", "5"), ("per_page", "50")]).unwrap().size, 5);
        let active = |pairs: &[(&str, &str)]| q(pairs).unwrap().view.is_active;
        assert_eq!(active(&[("status", "active")]), Some(true));
        assert_eq!(active(&[("status", "inactive")]), Some(false));
        assert_eq!(
            active(&[("status", "inactive"), ("is_active", "true")]),
            Some(true)
        );
        let c = Cursor {
            view: View {
                sort: SortField::Name,
                order: Order::Asc,
                is_active: Some(false),
                environment: Some(Environment::Test),
            },
            after: (
                b"billing".to_vec(),
                "key_2sgXOxqc3QhsmIEJ5vB6iQ".to_string(),
            ),
            search: None,
        };
        let text = c.encode();
        assert_eq!(
            text,
            "name.asc.false.test.62696c6c696e67.key_2sgXOxqc3QhsmIEJ5vB6iQ"
        );
        let lq = q(&[
            ("cursor", &text),
            ("page", "3"),
            ("sort", "created_at"),
            ("is_active", "true"),
        ])
        .unwrap();
        assert_eq!(lq.view, c.view);
        assert_eq!(lq.paging, Paging::Cursor(Some(c.after)));
    }

    #[test]
    fn a_search_is_kept_by_its_cursors_and_any_hex_reads_back() {
        let lq = q(&[("q", "  Billing "), ("cursor", "")]).unwrap();
        assert_eq!(lq.search.as_deref(), Some(&b"billing"[..]));
        assert_eq!(q(&[("q", "")]).unwrap().search, None);
        let long = "x".repeat(MAX_SEARCH_CHARS + 1);
        assert_eq!(field_of(q(&[("q", &long)]).unwrap_err()), "q");
        let c = Cursor {
            view: q(&[]).unwrap().view,
            after: (b"a".to_vec(), "key_2sgXOxqc3QhsmIEJ5vB6iQ".to_string()),
            search: Some(vec![0xff, b'b']),
        };
        let text = c.encode();
        assert!(text.ends_with(".ff62"), "{text}");
        assert_eq!(Cursor::parse(&text), Some(c));
        // The cursor's search wins over a q beside it; an empty one is no cursor.
        let lq = q(&[("cursor", &text), ("q", "other")]).unwrap();
        assert_eq!(lq.search, Some(vec![0xff, b'b']));
        assert!(Cursor::parse(&format!("{text}.")).is_none());
    }
}
