//! `keyhub-size <elf>...`: the largest crates in each binary's code, from its
//! symbol table (`make size` runs it on the `bloat` profile's arm64 build,
//! the bootstraps with their symbols). See `keyhub_tools::crates`.

use clap::Parser;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

#[derive(Parser)]
struct Args {
    /// How many crates to list per binary.
    #[arg(long, default_value_t = 12)]
    top: usize,
    /// Unstripped ELF files.
    files: Vec<std::path::PathBuf>,
}

fn main() -> Result<(), keyhub_tools::Error> {
    let args = Args::parse();
    for path in &args.files {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = file
            .section_by_name(".text")
            .map(|s| s.size())
            .ok_or_else(|| format!("{}: no .text section", path.display()))?;
        let symbols: Vec<(&str, u64)> = file
            .symbols()
            .filter(|s| s.is_definition() && s.size() > 0)
            .filter(|s| matches!(s.kind(), SymbolKind::Text))
            .filter_map(|s| Some((s.name().ok()?, s.size())))
            .collect();
        if symbols.is_empty() {
            return Err(format!("{}: no symbols (a stripped build?)", path.display()).into());
        }
        let sizes = keyhub_tools::crates::by_crate(symbols.iter().copied());
        let named: u64 = sizes.iter().map(|(_, n)| n).sum();
        println!(
            "{}: .text {} bytes, {} of them in {} function symbols",
            path.display(),
            text,
            named,
            symbols.len()
        );
        // Code is about half a bootstrap: the rest is read-only data and the
        // unwind tables `panic = "unwind"` keeps (README, "Sizes").
        let mut sections: Vec<(String, u64)> = file
            .sections()
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.size())))
            .filter(|(name, size)| !name.is_empty() && *size > 0)
            .collect();
        sections.sort_by_key(|s| std::cmp::Reverse(s.1));
        let listed: Vec<String> = sections
            .iter()
            // What stripping removes is not in the bootstrap.
            .filter(|(name, _)| {
                ![".symtab", ".strtab", ".debug", ".comment"]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
            .take(5)
            .map(|(name, size)| format!("{name} {size}"))
            .collect();
        println!("  sections: {}", listed.join(", "));
        for (name, bytes) in sizes.iter().take(args.top) {
            println!(
                "  {:<28} {:>9} bytes {:>5.1}%",
                name,
                bytes,
                100.0 * *bytes as f64 / text as f64
            );
        }
    }
    Ok(())
}
