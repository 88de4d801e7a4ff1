//! No import cycle among the library's modules: what
//! `scripts/module-graph.sh` shows with cargo-modules, checked here from
//! the sources alone (every `crate::` and `super::` path outside test
//! code, resolved to the deepest module it names), so CI needs no extra
//! tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `lib.rs` is "".
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The source without test code: a `#[cfg(test)]` item (a module or a
/// function) is cut to its closing brace.
fn without_tests(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        // The item ends at its first `;` (a `mod x;` declaration) or at the
        // brace that closes its first `{`.
        let semi = after.find(';');
        let open = after.find('{');
        let end = match (semi, open) {
            (Some(s), Some(o)) if s < o => s + 1,
            (_, Some(o)) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (j, ch) in after[o..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (Some(s), None) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The source without `//` comments (doc comments name paths too).
fn without_comments(src: &str) -> String {
    src.lines()
        .map(|line| match line.find("//") {
            // Not inside a string literal (`"http://..."`).
            Some(i) if line[..i].matches('"').count() % 2 == 0 => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One source file, read once.
struct Module {
    name: String,
    /// Its non-test code.
    code: String,
    /// Items it defines (`pub` or not).
    defines: BTreeSet<String>,
    /// Items it re-exports: name -> the path after `use`.
    reexports: BTreeMap<String, String>,
}

fn read_modules() -> Vec<Module> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    let mut out = Vec::new();
    for path in paths {
        let rel = path.strip_prefix(&src).unwrap();
        let file = rel.file_name().unwrap().to_string_lossy();
        if file.ends_with("_tests.rs") || file == "test_support.rs" || file == "main.rs" {
            continue;
        }
        let code = without_tests(&without_comments(&std::fs::read_to_string(&path).unwrap()));
        let mut defines = BTreeSet::new();
        let mut reexports = BTreeMap::new();
        for line in code.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut w = words.as_slice();
            if w.first().is_some_and(|x| x.starts_with("pub")) {
                w = &w[1..];
            }
            while w
                .first()
                .is_some_and(|x| ["async", "unsafe", "const"].contains(x) && w.len() > 2)
            {
                w = &w[1..];
            }
            match w {
                [kind, name, ..]
                    if [
                        "struct", "enum", "fn", "type", "trait", "const", "static", "mod",
                    ]
                    .contains(kind) =>
                {
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    defines.insert(name);
                }
                _ => {}
            }
        }
        for (i, _) in code.match_indices("pub use ") {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            for (name, path) in use_items(&code[i + 8..end]) {
                reexports.insert(name, path);
            }
        }
        out.push(Module {
            name: module_of(rel),
            code,
            defines,
            reexports,
        });
    }
    out
}

/// The items of a use tree: `a::{B, c::{D as E}}` ->
/// [("B", "a::B"), ("E", "a::c::D")].
fn use_items(tree: &str) -> Vec<(String, String)> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim().trim_end_matches(';').trim();
    let mut out = Vec::new();
    walk_tree("", tree, &mut out);
    out
}

fn walk_tree(prefix: &str, tree: &str, out: &mut Vec<(String, String)>) {
    // Split at top-level commas.
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(open) = part.find('{') {
            let base = format!("{prefix}{}", &part[..open]);
            let inner = part[open + 1..].trim_end().trim_end_matches('}');
            walk_tree(&base, inner, out);
            continue;
        }
        let (path, alias) = match part.split_once(" as ") {
            Some((p, a)) => (p.trim(), a.trim()),
            None => (part, part.rsplit("::").next().unwrap_or(part)),
        };
        if alias == "self" || alias == "*" {
            let base = format!("{prefix}{path}");
            let base = base.trim_end_matches("::self").trim_end_matches("::*");
            out.push((String::new(), base.to_string()));
            continue;
        }
        out.push((alias.to_string(), format!("{prefix}{path}")));
    }
}

/// The module a path used from module `from` lands in: through modules,
/// then to where the named item is defined (following re-exports).
fn resolve(
    modules: &BTreeMap<String, &Module>,
    from: &str,
    path: &str,
    depth: usize,
) -> Option<String> {
    let mut cur: Vec<String> = from
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let mut segments = path.split("::").map(str::trim).peekable();
    match segments.peek() {
        Some(&"crate") => {
            cur.clear();
            segments.next();
        }
        Some(&"self") => {
            segments.next();
        }
        _ => {}
    }
    while segments.peek() == Some(&"super") {
        cur.pop();
        segments.next();
    }
    for seg in segments {
        let ident: String = seg
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        let mut child = cur.clone();
        child.push(ident.clone());
        if modules.contains_key(&child.join("::")) {
            cur = child;
            continue;
        }
        let here = cur.join("::");
        let module = modules.get(&here)?;
        if !module.defines.contains(&ident) && depth < 8 {
            if let Some(target) = module.reexports.get(&ident) {
                return resolve(modules, &here, target, depth + 1);
            }
        }
        return Some(here);
    }
    let here = cur.join("::");
    modules.contains_key(&here).then_some(here)
}

/// Every module and the modules its non-test code uses (items resolved
/// to the module that defines them, as cargo-modules does).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let read = read_modules();
    let modules: BTreeMap<String, &Module> = read.iter().map(|m| (m.name.clone(), m)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &read {
        let mut uses: Vec<String> = Vec::new();
        // `use` statements (possibly multi-line groups), then `crate::`
        // and `super::` paths in expressions and types.
        let mut rest = m.code.as_str();
        while let Some(i) = rest.find("use ") {
            let before_ok =
                rest[..i].ends_with(|c: char| c.is_whitespace() || c == ')' || c == ';') || i == 0;
            let stmt_end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
            if before_ok {
                let stmt = &rest[i + 4..stmt_end];
                if !stmt.trim_start().starts_with("std") {
                    for (_, path) in use_items(stmt) {
                        uses.push(path);
                    }
                }
            }
            rest = &rest[(stmt_end).min(rest.len())..];
            if rest.is_empty() {
                break;
            }
            rest = &rest[1.min(rest.len())..];
        }
        for prefix in ["crate::", "super::"] {
            for (i, _) in m.code.match_indices(prefix) {
                if m.code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let tail: String = m.code[i..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !tail.ends_with("::") {
                    uses.push(tail);
                }
            }
        }
        for path in uses {
            if let Some(to) = resolve(&modules, &m.name, &path, 0) {
                if to != m.name && !to.is_empty() {
                    edges.entry(m.name.clone()).or_default().insert(to);
                }
            }
        }
    }
    edges
}

/// The strongly connected components of more than one module.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.keys().chain(edges.values().flatten()).collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in edges.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) {
            continue;
        }
        let scc: Vec<String> = nodes
            .iter()
            .filter(|m| reached[*n].contains(**m) && reached[**m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        if scc.len() > 1 {
            done.extend(scc.iter().cloned());
            out.push(scc);
        }
    }
    out
}

#[test]
fn the_library_has_no_import_cycle() {
    let edges = graph();
    // The reader sees real edges, not an empty graph.
    assert!(edges["stack::route"].contains("stack::gate"), "{edges:?}");
    assert!(
        edges["proxy::body"].contains("proxy::exchange"),
        "{edges:?}"
    );
    let found = cycles(&edges);
    assert!(found.is_empty(), "import cycles: {found:?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    edges.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&edges), [["a", "b", "c"]]);
}

#[test]
fn test_code_is_left_out() {
    let src = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::b;\n    fn f() { {} }\n}\nuse crate::c;\n#[cfg(test)]\nmod more;\n";
    let code = without_tests(src);
    assert!(
        code.contains("crate::a") && code.contains("crate::c"),
        "{code}"
    );
    assert!(
        !code.contains("crate::b") && !code.contains("mod more"),
        "{code}"
    );
}
