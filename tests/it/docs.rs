//! docs/architecture.md names every crate and every top-level module of
//! each, in that crate's rows of its table: a module added without a line
//! there fails here.

use std::path::Path;

#[test]
fn the_architecture_page_names_every_crate_and_module() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let page = std::fs::read_to_string(repo.join("docs/architecture.md")).unwrap();
    let mut missing = Vec::new();
    let mut crates: Vec<_> = std::fs::read_dir(repo.join("crates"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    for krate in crates {
        let src = repo.join("crates").join(&krate).join("src");
        if !src.is_dir() {
            continue;
        }
        let rows: Vec<&str> = page
            .lines()
            .filter(|l| {
                l.starts_with(&format!("| `crates/{krate}`"))
                    || l.starts_with(&format!("| `crates/{krate}/"))
            })
            .collect();
        if rows.is_empty() {
            missing.push(format!("crates/{krate} (no row)"));
            continue;
        }
        let rows = rows.join("\n");
        for entry in std::fs::read_dir(&src).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // The crate root, binaries and generated code speak for themselves.
            if ["lib.rs", "main.rs", "bin", "gen"].contains(&name.as_str()) {
                continue;
            }
            let named = if entry.path().is_dir() {
                rows.contains(&format!("{name}/")) || rows.contains(&format!("src/{name}`"))
            } else if name.ends_with(".rs") {
                rows.contains(&name)
            } else {
                true
            };
            if !named {
                missing.push(format!("crates/{krate}/src/{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name (in its crate's rows): {}",
        missing.join(", ")
    );
}
