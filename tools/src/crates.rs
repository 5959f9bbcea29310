//! Which crates a binary's bytes come from, for `make size` (issue 9): the
//! size budget says that a bootstrap is too big; this says where to cut.
//!
//! Symbols are attributed the way cargo-bloat does it: a demangled path's
//! first segment, and for a trait impl (`<A as B>::f`) the crate of the type
//! `A` when it names one, else the trait's. Generic code lands in the crate
//! that defines the generic (a `core::ptr::drop_in_place<aws_sdk_…>` counts
//! as `core`), so the list is a guide to where bytes are, not a bill.

use std::collections::HashMap;

/// The crate a symbol's code belongs to.
pub fn crate_of(symbol: &str) -> String {
    let Ok(demangled) = rustc_demangle::try_demangle(symbol) else {
        // ring names its C and assembly `ring_core_<version>_…`.
        if symbol.starts_with("ring_core_") {
            return "ring".to_string();
        }
        // LLVM's machine outliner (on at opt-level `z` for arm64) moves
        // code repeated across functions of any crate into these: about 7%
        // of the authorizer's code, owned by no one crate.
        if symbol.starts_with("OUTLINED_FUNCTION_") {
            return "[outlined by LLVM]".to_string();
        }
        return "[C/asm]".to_string();
    };
    let path = format!("{demangled:#}");
    first_crate(&path).unwrap_or_else(|| "[unknown]".to_string())
}

fn first_crate(path: &str) -> Option<String> {
    let Some(inner) = path.strip_prefix('<') else {
        return segment(path);
    };
    // `<A as B>::f`: A's crate if A is a path, else B's (`<u8 as …>`).
    let inner = inner.trim_start_matches(['&', '*', '[', '(']);
    let inner = inner
        .strip_prefix("mut ")
        .or_else(|| inner.strip_prefix("const "))
        .or_else(|| inner.strip_prefix("dyn "))
        .unwrap_or(inner);
    if let Some(c) = segment(inner) {
        return Some(c);
    }
    let (_, trait_path) = inner.split_once(" as ")?;
    segment(trait_path)
}

/// A path's first segment if the path has more than one and it looks like
/// a crate name.
fn segment(path: &str) -> Option<String> {
    let end = path.find("::")?;
    let head = &path[..end];
    let is_name = !head.is_empty() && head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    is_name.then(|| head.to_string())
}

/// Bytes per crate, largest first, from `(symbol name, size)` pairs.
pub fn by_crate<'a>(symbols: impl IntoIterator<Item = (&'a str, u64)>) -> Vec<(String, u64)> {
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for (name, size) in symbols {
        *sizes.entry(crate_of(name)).or_default() += size;
    }
    let mut sizes: Vec<_> = sizes.into_iter().collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_v0_mangled_paths_name_their_crate() {
        // `serde_json::de::from_str` in the legacy scheme, with its hash.
        assert_eq!(
            crate_of("_ZN10serde_json2de8from_str17h0123456789abcdefE"),
            "serde_json"
        );
        // `aws_sdk_dynamodb::client::new` in the v0 scheme.
        assert_eq!(
            crate_of("_RNvNtCs1234_16aws_sdk_dynamodb6client3new"),
            "aws_sdk_dynamodb"
        );
    }

    #[test]
    fn a_trait_impl_counts_for_the_type_unless_the_type_has_no_crate() {
        assert_eq!(
            first_crate("<hyper::client::Conn as core::future::Future>::poll").as_deref(),
            Some("hyper")
        );
        assert_eq!(
            first_crate("<&mut serde_json::Value as core::fmt::Debug>::fmt").as_deref(),
            Some("serde_json")
        );
        assert_eq!(
            first_crate("<u8 as core::fmt::Display>::fmt").as_deref(),
            Some("core")
        );
    }

    #[test]
    fn c_and_assembly_symbols_are_grouped_and_rings_are_rings() {
        assert_eq!(
            crate_of("ring_core_0_17_14__sha256_block_data_order"),
            "ring"
        );
        assert_eq!(crate_of("memcpy"), "[C/asm]");
        assert_eq!(crate_of("OUTLINED_FUNCTION_1234"), "[outlined by LLVM]");
    }

    #[test]
    fn sizes_add_up_per_crate_largest_first() {
        let sizes = by_crate([
            ("_ZN10serde_json2de8from_str17h0123456789abcdefE", 100),
            ("_ZN10serde_json2de5parse17h0123456789abcdefE", 50),
            ("memcpy", 400),
        ]);
        assert_eq!(
            sizes,
            vec![
                ("[C/asm]".to_string(), 400),
                ("serde_json".to_string(), 150)
            ]
        );
    }
}
