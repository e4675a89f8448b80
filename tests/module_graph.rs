//! The module graph has no circles: each component depends on the ones below it, never back.
//! Read from the source itself: every `crate::...` and `super::...` path outside test code
//! is an edge between top-level modules (`journal`, `notify`, ...) and between the sibling
//! modules of one folder (`config::load`, `config::validate`, ...). A parent and its own
//! children are left out: Rust puts shared items in `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its unit tests (`#[cfg(test)]` blocks run to the end here)
/// and without comments (a doc link is not a dependency).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names: `crate::a::b`, `super::x`, and the members of `use crate::{...}`
/// and `use super::{...}` groups.
fn paths(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let segments: Vec<String> = member
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if !segments.is_empty() {
                    out.push(segments);
                }
            }
        } else {
            let segments: Vec<String> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if !segments.is_empty() {
                out.push(segments);
            }
        }
    }
    out
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Folder modules and their submodules (by file or folder name).
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel: Vec<String> = f
            .strip_prefix(&src)
            .unwrap()
            .iter()
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if rel.len() >= 2 && rel[1] != "mod" {
            children
                .entry(rel[0].clone())
                .or_default()
                .insert(rel[1].clone());
        }
    }
    let node = |top: &str, sub: Option<&str>| match sub {
        Some(s) if children.get(top).is_some_and(|c| c.contains(s)) => format!("{top}::{s}"),
        _ => top.to_string(),
    };
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for f in &files {
        let rel: Vec<String> = f
            .strip_prefix(&src)
            .unwrap()
            .iter()
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if rel.last().is_some_and(|n| n == "tests") {
            continue; // unit tests may use anything
        }
        let top = rel[0].clone();
        let me = if rel.len() >= 2 && rel[1] != "mod" {
            node(&top, Some(&rel[1]))
        } else {
            top.clone()
        };
        let text = code(f);
        for p in paths(&text, "crate::") {
            let target = node(&p[0], p.get(1).map(String::as_str));
            edges.insert((me.clone(), target));
        }
        if rel.len() >= 2 && rel[1] != "mod" {
            for p in paths(&text, "super::") {
                edges.insert((me.clone(), node(&top, Some(&p[0]))));
            }
        }
    }
    // Only edges between different top-level modules, or between siblings of one folder.
    let relevant: BTreeSet<(String, String)> = edges
        .into_iter()
        .filter(|(a, b)| {
            let (ta, tb) = (a.split("::").next().unwrap(), b.split("::").next().unwrap());
            if ta != tb {
                return true;
            }
            a.contains("::") && b.contains("::") && a != b
        })
        .map(|(a, b)| {
            let (ta, tb) = (a.split("::").next().unwrap(), b.split("::").next().unwrap());
            if ta != tb {
                (ta.to_string(), tb.to_string())
            } else {
                (a, b)
            }
        })
        .collect();
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in &relevant {
        graph.entry(a).or_default().push(b);
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut cycle: Vec<&str> = stack[i..].to_vec();
            cycle.push(n);
            cycles.push(cycle.join(" -> "));
            return;
        }
        stack.push(n);
        for next in graph.get(n).into_iter().flatten() {
            visit(next, graph, stack, done, cycles);
        }
        stack.pop();
        done.insert(n);
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "module circles:\n{}", cycles.join("\n"));
    assert!(graph.len() > 5, "the scan found almost no edges: {graph:?}");
}
