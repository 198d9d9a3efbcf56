//! The layering rules of `src/`, kept by CI rather than by prose. Read from the source files:
//!
//! - no import cycle between the crate's top-level modules, nor between the submodules of one;
//! - the pure modules (`probe`, `alerts`, `channel`, `validate`, `logs`, `tiers`) import no I/O: no database,
//!   SSH, HTTP or async runtime crate, no `std` file, network or process module, and no module
//!   of the crate but each other, `error` and the value types of `entity::types`;
//! - SQL only in `store`: elsewhere no query building, no entity's `find`/`insert`, no raw
//!   statements — only connections and transactions to pass to `store`;
//! - every transaction begins through `store::begin_write` (on SQLite a write transaction from
//!   the start, so concurrent writers queue instead of failing with "database is locked").
//!
//! Each rule is also tried on a small made-up tree that breaks it, so the checks themselves can
//! fail.

use std::collections::{BTreeMap, BTreeSet};

/// A module path, `["poller", "link"]`; the crate root is `[]`.
type ModPath = Vec<String>;

/// Every library source file under `src/` (not `main.rs`, not the binaries), by module path.
fn library_sources() -> BTreeMap<ModPath, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(&root).unwrap();
            if path.is_dir() {
                if rel != std::path::Path::new("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || rel == std::path::Path::new("main.rs")
            {
                continue;
            }
            let mut parts: ModPath = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            // A file of tests (`mod tests;`) is test code.
            if parts.last().is_some_and(|p| p == "tests") {
                continue;
            }
            out.insert(parts, std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// The text without comments, string literals (so a path in a doc or a message is not an
/// import) and the test module at the end of a file (tests may do what the module may not,
/// and their `super` is not the file's).
fn code_only(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal (not a lifetime).
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    fn parse(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let s = s.trim();
        if s.is_empty() {
            return;
        }
        match s.find('{') {
            Some(open) => {
                let head: Vec<String> = s[..open]
                    .split("::")
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                let close = s.rfind('}').expect("balanced braces");
                let mut base = prefix.to_vec();
                base.extend(head);
                let (mut depth, mut start) = (0, open + 1);
                let inner = &s[..close];
                for (i, c) in inner.char_indices().skip(open + 1) {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            parse(&inner[start..i], &base, out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                parse(&inner[start..], &base, out);
            }
            None => {
                let item = s.split(" as ").next().unwrap_or(s).trim();
                let mut path = prefix.to_vec();
                path.extend(
                    item.split("::")
                        .map(str::trim)
                        .filter(|p| !p.is_empty() && *p != "self")
                        .map(str::to_owned),
                );
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    parse(tree, &[], &mut out);
    out
}

/// Every path a file names: its `use` trees, and paths written out in the code
/// (`crate::store::now_ms()`, `sea_orm::Set`).
fn paths_named(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0
            || !rest.as_bytes()[at - 1].is_ascii_alphanumeric() && rest.as_bytes()[at - 1] != b'_';
        let tail = &rest[at + 4..];
        let Some(end) = tail.find(';') else { break };
        if before_ok {
            out.extend(expand_use(&tail[..end]));
        }
        rest = &tail[end..];
    }
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let starts = (c.is_ascii_alphabetic() || c == b'_')
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len()
            && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b':')
        {
            j += 1;
        }
        let word = &code[i..j];
        // A word ending in `::` heads a `use` tree, read above.
        if word.contains("::") && !word.ends_with("::") {
            out.push(
                word.split("::")
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        i = j.max(i + 1);
    }
    out
}

/// A file's references to the crate's own modules, as absolute module paths (`crate::`,
/// `super::`, `self::` resolved; the file's own `mod` children count as `self`).
fn crate_refs(module: &ModPath, code: &str) -> BTreeSet<ModPath> {
    let mut out = BTreeSet::new();
    for path in paths_named(code) {
        let Some(first) = path.first() else { continue };
        let resolved: ModPath = match first.as_str() {
            "crate" => path[1..].to_vec(),
            "super" => {
                let mut base = module.clone();
                let mut k = 0;
                while path.get(k).is_some_and(|p| p == "super") {
                    base.pop();
                    k += 1;
                }
                base.extend(path[k..].iter().cloned());
                base
            }
            "self" => {
                let mut base = module.clone();
                base.extend(path[1..].iter().cloned());
                base
            }
            _ => continue,
        };
        out.insert(resolved);
    }
    out
}

/// The top-level module a path is in, when it is one of `known`.
fn top<'a>(path: &ModPath, known: &'a BTreeSet<String>) -> Option<&'a String> {
    path.first().and_then(|p| known.get(p))
}

/// Finds a cycle in a directed graph, as the list of its nodes.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut found = stack[from..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                0 => {
                    if let Some(found) = visit(next, graph, state, stack) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0
            && let Some(found) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

/// Import cycles: between top-level modules, and between sibling submodules of one module
/// (a module's `mod.rs` and its children may use each other).
fn import_cycles(sources: &BTreeMap<ModPath, String>) -> Vec<String> {
    let tops: BTreeSet<String> = sources.keys().filter_map(|p| p.first().cloned()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, text) in sources {
        let Some(own) = module.first() else { continue };
        let code = code_only(text);
        for target in crate_refs(module, &code) {
            if let Some(t) = top(&target, &tops)
                && t != own
            {
                graph.entry(own.clone()).or_default().insert(t.clone());
            }
            // Siblings: `a::b` naming `a::c::…` (parent `a`).
            if module.len() >= 2 {
                let parent = &module[..module.len() - 1];
                if target.len() > parent.len()
                    && target[..parent.len()] == *parent
                    && target[parent.len()] != module[parent.len()]
                    && sources.contains_key(&target[..=parent.len()].to_vec())
                {
                    siblings
                        .entry(parent.to_vec())
                        .or_default()
                        .entry(module[parent.len()].clone())
                        .or_default()
                        .insert(target[parent.len()].clone());
                }
            }
        }
    }
    let mut found = Vec::new();
    if let Some(c) = cycle(&graph) {
        found.push(format!("top-level modules: {}", c.join(" → ")));
    }
    for (parent, graph) in &siblings {
        if let Some(c) = cycle(graph) {
            found.push(format!("inside {}: {}", parent.join("::"), c.join(" → ")));
        }
    }
    found
}

/// The pure modules, which may import only each other, `error` and `entity::types`.
const PURE: &[&str] = &["probe", "alerts", "channel", "validate", "logs", "tiers"];
/// Crates and `std` modules that do I/O (or run it), which pure modules must not name.
const IO_CRATES: &[&str] = &[
    "sea_orm",
    "sea_query",
    "sqlx",
    "migration",
    "russh",
    "tokio",
    "tokio_util",
    "tokio_cron_scheduler",
    "reqwest",
    "lettre",
    "rustls",
    "tokio_rustls",
    "poem",
];
const STD_IO: &[&str] = &["fs", "process", "io", "thread", "env"];
/// What of `std::net` does I/O (its address types do not).
const STD_NET_IO: &[&str] = &["TcpStream", "TcpListener", "UdpSocket", "ToSocketAddrs"];

fn impurities(sources: &BTreeMap<ModPath, String>) -> Vec<String> {
    let mut found = Vec::new();
    for (module, text) in sources {
        if !module.first().is_some_and(|m| PURE.contains(&m.as_str())) {
            continue;
        }
        let name = module.join("::");
        let code = code_only(text);
        for target in crate_refs(module, &code) {
            if let Some(first) = target.first()
                && !PURE.contains(&first.as_str())
                && first != "error"
            {
                found.push(format!("{name} imports crate::{}", target.join("::")));
            }
        }
        for path in paths_named(&code) {
            let first = path[0].as_str();
            let io = IO_CRATES.contains(&first)
                || (first == "std" && path.get(1).is_some_and(|m| STD_IO.contains(&m.as_str())))
                || (first == "std"
                    && path.get(1).is_some_and(|m| m == "net")
                    && path.get(2).is_none_or(|i| STD_NET_IO.contains(&i.as_str())))
                || (first == "entity" && path.get(1).is_some_and(|m| m != "types"));
            if io {
                found.push(format!("{name} names {}", path.join("::")));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// What of sea-orm code outside `store` may name: a connection or transaction to hand to
/// `store`, and database errors to classify.
const SEA_ORM_OUTSIDE_STORE: &[&str] = &[
    "DatabaseConnection",
    "DatabaseTransaction",
    "DbErr",
    "SqlErr",
];

fn sql_outside_store(sources: &BTreeMap<ModPath, String>) -> Vec<String> {
    let mut found = Vec::new();
    for (module, text) in sources {
        if module.first().is_some_and(|m| m == "store") {
            continue;
        }
        let name = if module.is_empty() {
            "crate root".to_owned()
        } else {
            module.join("::")
        };
        let code = code_only(text);
        for path in paths_named(&code) {
            let allowed = match path[0].as_str() {
                "sea_orm" => path
                    .get(1)
                    .is_some_and(|item| SEA_ORM_OUTSIDE_STORE.contains(&item.as_str())),
                "sea_query" | "sqlx" => false,
                _ => true,
            };
            if !allowed {
                found.push(format!("{name} names {}", path.join("::")));
            }
        }
        for query in [
            "Entity::find",
            "Entity::insert",
            "Entity::update",
            "Entity::delete",
            "ActiveModel {",
            "_raw(",
            "execute_unprepared",
        ] {
            if code.contains(query) {
                found.push(format!("{name} builds SQL ({query})"));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Transactions begun other than through `store::begin_write`.
fn plain_transactions(sources: &BTreeMap<ModPath, String>) -> Vec<String> {
    sources
        .iter()
        .filter(|(_, text)| {
            let code = code_only(text);
            code.contains(".begin()") || code.contains("TransactionTrait")
        })
        .map(|(module, _)| format!("{} begins a transaction itself", module.join("::")))
        .filter(|found| found != "store begins a transaction itself")
        .collect()
}

#[test]
fn every_transaction_starts_as_a_write() {
    let found = plain_transactions(&library_sources());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_import_cycles() {
    let cycles = import_cycles(&library_sources());
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn pure_modules_do_no_io() {
    let found = impurities(&library_sources());
    assert!(
        found.is_empty(),
        "pure modules with I/O:\n{}",
        found.join("\n")
    );
}

#[test]
fn sql_only_in_store() {
    let found = sql_outside_store(&library_sources());
    assert!(found.is_empty(), "SQL outside store:\n{}", found.join("\n"));
}

#[test]
fn the_checks_find_what_breaks_the_rules() {
    let tree = |files: &[(&str, &str)]| -> BTreeMap<ModPath, String> {
        files
            .iter()
            .map(|(path, text)| {
                (
                    path.split("::")
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    text.to_string(),
                )
            })
            .collect()
    };
    let clean = tree(&[
        ("", "pub mod alerts; pub mod store; pub mod poller;"),
        (
            "alerts",
            "use crate::error::Result; use entity::types::Level;",
        ),
        (
            "store",
            "use sea_orm::EntityTrait; use crate::alerts::evaluate::Changes;",
        ),
        ("poller", "use crate::{store::{self, polls}, alerts};"),
        (
            "poller::poll",
            "use super::link::Link; // crate::store cycle? no",
        ),
        (
            "poller::link",
            "use crate::store; fn f() { \"crate::poller::poll\"; }",
        ),
    ]);
    assert!(import_cycles(&clean).is_empty());
    assert!(impurities(&clean).is_empty());
    assert!(sql_outside_store(&clean).is_empty());

    let broken = tree(&[
        ("", "pub mod alerts; pub mod store; pub mod poller;"),
        (
            "alerts",
            "use crate::store::alerts; fn f() { tokio::spawn(async {}); }",
        ),
        ("store", "use crate::{poller::cache::HostCache};"),
        (
            "poller",
            "use sea_orm::{DatabaseConnection, QueryFilter}; use crate::alerts::text;\n\
             fn f() { host::Entity::find(); }",
        ),
        ("poller::poll", "use super::link::Link;"),
        ("poller::link", "use super::{poll::who};"),
    ]);
    let cycles = import_cycles(&broken);
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(cycles[0].starts_with("top-level modules"), "{cycles:?}");
    assert!(cycles[1].contains("link → poll") || cycles[1].contains("poll → link"));
    let impure = impurities(&broken);
    assert!(
        impure.iter().any(|f| f.contains("crate::store::alerts")),
        "{impure:?}"
    );
    assert!(
        impure.iter().any(|f| f.contains("tokio::spawn")),
        "{impure:?}"
    );
    let sql = sql_outside_store(&broken);
    assert!(
        sql.iter().any(|f| f.contains("sea_orm::QueryFilter")),
        "{sql:?}"
    );
    assert!(sql.iter().any(|f| f.contains("Entity::find")), "{sql:?}");
    assert!(
        !sql.iter().any(|f| f.contains("DatabaseConnection")),
        "{sql:?}"
    );
}
