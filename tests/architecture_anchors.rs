//! ARCHITECTURE.md's rule, checked: a change that moves a file or renames a
//! function anchored there updates the document in the same commit. Every
//! file its code-anchor table names exists, and every function, type or
//! constant a row names is defined in that row's files; the same for the
//! routes section's anchors and the diagram labels (`pool.rs
//! UpstreamPool::send()`); every `.rs` file the document names exists.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable")
}

/// The lines of the section headed `## {title}`, up to the next `## `.
fn section<'a>(doc: &'a str, title: &str) -> Vec<&'a str> {
    let heading = format!("## {title}");
    let mut lines = doc.lines().skip_while(|l| l.trim() != heading);
    assert!(
        lines.next().is_some(),
        "ARCHITECTURE.md has no section {heading:?}"
    );
    lines.take_while(|l| !l.starts_with("## ")).collect()
}

/// The backticked spans of `text`.
fn ticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The cells of a table row (`| a | b |`), or None for other lines and the
/// header's rule.
fn cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
    if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
        return None;
    }
    Some(cells)
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `source` defines `name` as an item (fn, type, constant, ...).
fn defines(source: &str, name: &str) -> bool {
    const KINDS: [&str; 8] = [
        "fn ", "struct ", "enum ", "type ", "const ", "static ", "trait ", "mod ",
    ];
    KINDS.iter().any(|kind| {
        let item = format!("{kind}{name}");
        source.match_indices(&item).any(|(at, _)| {
            let before = source[..at].chars().next_back();
            let after = source[at + item.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

/// What is wrong with anchor `key` against the sources of its row's files:
/// `name()`, `Type::method()` and `Type` must be defined there; anything
/// else (a flag, say) must appear in them as written.
fn check_key(key: &str, sources: &[(String, String)]) -> Option<String> {
    let files = || {
        sources
            .iter()
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let path = key.strip_suffix("()").unwrap_or(key);
    let segments: Vec<&str> = path.split("::").collect();
    if segments.iter().all(|s| is_ident(s)) {
        for segment in segments {
            if !sources.iter().any(|(_, src)| defines(src, segment)) {
                return Some(format!("`{key}`: no `{segment}` defined in {}", files()));
            }
        }
        return None;
    }
    if sources.iter().any(|(_, src)| src.contains(key)) {
        None
    } else {
        Some(format!("`{key}`: not found in {}", files()))
    }
}

fn read(file: &str) -> Result<String, String> {
    fs::read_to_string(root().join(file)).map_err(|e| format!("`{file}`: {e}"))
}

#[test]
fn every_code_anchor_names_a_file_and_items_that_exist() {
    let doc = architecture();
    let mut problems = Vec::new();
    let mut rows = 0;
    for line in section(&doc, "Code anchors") {
        let Some(cells) = cells(line) else { continue };
        if cells.len() != 3 || cells[1] == "file" {
            continue;
        }
        rows += 1;
        let mut sources = Vec::new();
        for file in ticked(cells[1]) {
            match read(file) {
                Ok(src) => sources.push((file.to_string(), src)),
                Err(e) => problems.push(format!("{}: {e}", cells[0])),
            }
        }
        if sources.is_empty() {
            continue;
        }
        for key in ticked(cells[2]) {
            if let Some(problem) = check_key(key, &sources) {
                problems.push(format!("{}: {problem}", cells[0]));
            }
        }
    }
    assert!(
        rows > 40,
        "only {rows} anchor rows found: is the table's layout changed?"
    );
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md's code anchors are stale:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_routes_sections_anchors_exist() {
    let doc = architecture();
    let mut problems = Vec::new();
    let mut anchors = 0;
    for line in section(&doc, "Routes") {
        // `dir/file.rs` `item()` pairs, in the table and the text under it.
        let spans = ticked(line);
        for pair in spans.windows(2) {
            let [file, key] = [pair[0], pair[1]];
            if !file.ends_with(".rs") || key.ends_with(".rs") {
                continue;
            }
            anchors += 1;
            let file = format!("src/{file}");
            match read(&file) {
                Ok(src) => {
                    if let Some(problem) = check_key(key, &[(file, src)]) {
                        problems.push(problem);
                    }
                }
                Err(e) => problems.push(e),
            }
        }
    }
    assert!(anchors >= 3, "only {anchors} route anchors found");
    assert!(
        problems.is_empty(),
        "stale route anchors:\n{}",
        problems.join("\n")
    );
}

/// Every `.rs` file under `src/`, as `/`-separated paths from the crate root.
fn src_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("src/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(root()).unwrap_or(&path).to_path_buf());
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    files
        .iter()
        .map(|f| f.to_string_lossy().replace('\\', "/"))
        .collect()
}

#[test]
fn every_rust_file_the_document_names_exists() {
    let doc = architecture();
    let names = src_files();
    let mut missing = Vec::new();
    let mut named = 0;
    for word in doc.split(|c: char| !(c.is_ascii_alphanumeric() || "_./".contains(c))) {
        let word = word.trim_end_matches('.');
        if !word.ends_with(".rs") || word == ".rs" {
            continue;
        }
        named += 1;
        let found = if word.contains('/') {
            // A path from the crate root (`src/app.rs`) or from src/ (`routes/table.rs`).
            names
                .iter()
                .any(|n| n == word || n.ends_with(&format!("/{word}")))
                || root().join(word).is_file()
        } else {
            // A diagram's bare file name, under its directory's subgraph.
            names.iter().any(|n| n.rsplit('/').next() == Some(word)) || root().join(word).is_file()
        };
        if !found {
            missing.push(word.to_string());
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        named > 40,
        "only {named} file names found in ARCHITECTURE.md"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {missing:?}"
    );
}

#[test]
fn the_diagrams_items_exist_in_their_files() {
    let doc = architecture();
    let files = src_files();
    let mut problems = Vec::new();
    let mut labels = 0;
    // Diagram labels name a file, then what it holds: `pool.rs UpstreamPool::send()<br/>...`.
    let words: Vec<&str> = doc.split([' ', '"', '[', '\n']).collect();
    for pair in words.windows(2) {
        let [file, item] = [pair[0], pair[1]];
        let item = item.split("<br/>").next().unwrap_or("");
        let item = item.strip_suffix("()").unwrap_or(item);
        if !file.ends_with(".rs") || item.is_empty() || !item.split("::").all(is_ident) {
            continue;
        }
        labels += 1;
        // The files of that name (a bare name may be in several directories).
        let sources: Vec<(String, String)> = files
            .iter()
            .filter(|f| f.ends_with(&format!("/{file}")))
            .filter_map(|f| read(f).ok().map(|src| (f.clone(), src)))
            .collect();
        if sources.is_empty() {
            problems.push(format!("{file}: no such file under src/"));
        } else if let Some(problem) = check_key(item, &sources) {
            problems.push(problem);
        }
    }
    assert!(labels > 30, "only {labels} diagram labels found");
    assert!(
        problems.is_empty(),
        "stale diagram labels:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_are_for() {
    let src = "pub struct Pool;\nimpl Pool {\n    pub async fn send(&self) {}\n}\nconst H2_STREAMS: usize = 1;\n";
    let sources = [("src/pool.rs".to_string(), src.to_string())];
    assert_eq!(check_key("Pool::send()", &sources), None);
    assert_eq!(check_key("H2_STREAMS", &sources), None);
    assert!(
        check_key("Pool::take()", &sources).is_some(),
        "a renamed method"
    );
    assert!(
        check_key("Poo", &sources).is_some(),
        "a prefix is not a definition"
    );
    assert!(check_key("sen()", &sources).is_some());
    assert!(check_key("--flag", &sources).is_some());
    assert!(read("src/no_such_file.rs").is_err());
    assert_eq!(
        cells("| a | `b.rs` | `c()` |"),
        Some(vec!["a", "`b.rs`", "`c()`"])
    );
    assert_eq!(cells("|---|---|---|"), None);
    assert_eq!(ticked("`a` and `b()`"), vec!["a", "b()"]);
}
