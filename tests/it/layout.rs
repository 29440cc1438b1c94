//! The source tree has no import cycle, between top-level folders or between files: each module
//! can be read, tested and changed knowing only what it imports. The imports are read off the
//! source (`crate::…` and `super::…` paths outside comments and `#[cfg(test)] mod tests`); a
//! module's use of its own parent (`super::Thing`, a re-export) is not an edge.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// `src/send/dispatch/mod.rs` → `[send, dispatch]`; `src/lib.rs` → `[]`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The code of a file without its comments and its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    text.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file names: `crate::a::b` and `super::c` (as written after the keyword).
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut found = Vec::new();
    for (keyword, from_crate) in [("crate::", true), ("super::", false)] {
        for (i, _) in code.match_indices(keyword) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[i + keyword.len()..];
            let mut segs = Vec::new();
            let mut s = rest;
            if !from_crate {
                // super::super::x
                while let Some(r) = s.strip_prefix("super::") {
                    segs.push("super".to_string());
                    s = r;
                }
            }
            loop {
                let end = s
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(s.len());
                if end == 0 {
                    break;
                }
                segs.push(s[..end].to_string());
                match s[end..].strip_prefix("::") {
                    Some(r) => s = r,
                    None => break,
                }
            }
            found.push((from_crate, segs));
        }
    }
    found
}

fn edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let longest = |path: &[String]| {
        (1..=path.len())
            .rev()
            .map(|i| path[..i].to_vec())
            .find(|m| modules.contains_key(m))
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &modules {
        let code = code(&std::fs::read_to_string(file).unwrap());
        for (from_crate, segs) in paths(&code) {
            let mut path: Module = if from_crate {
                Vec::new()
            } else {
                // `super` of a file module is its parent folder's module.
                module[..module.len().saturating_sub(1)].to_vec()
            };
            for seg in segs {
                if seg == "super" {
                    path.pop();
                } else {
                    path.push(seg);
                }
            }
            let Some(target) = longest(&path) else {
                continue;
            };
            if target == *module || module.starts_with(&target) {
                continue;
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    edges
}

/// A cycle in `edges`, if there is one, as the modules along it.
fn cycle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        n: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn shown(c: &[Module]) -> String {
    c.iter()
        .map(|m| m.join("::"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[test]
fn no_file_imports_a_file_that_imports_it_back_by_any_path() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
    assert!(
        edges.len() > 50,
        "the source tree was read: {}",
        edges.len()
    );
    if let Some(c) = cycle(&edges) {
        panic!("an import cycle: {}", shown(&c));
    }
}

#[test]
fn no_top_level_folder_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut folders: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, tos) in edges(&src) {
        for to in tos {
            if let (Some(a), Some(b)) = (from.first(), to.first()) {
                if a != b {
                    folders
                        .entry(vec![a.clone()])
                        .or_default()
                        .insert(vec![b.clone()]);
                }
            }
        }
    }
    assert!(folders.contains_key(&vec!["send".to_string()]));
    if let Some(c) = cycle(&folders) {
        panic!("an import cycle between folders: {}", shown(&c));
    }
}

/// The reader finds a cycle where there is one, so a pass means something.
#[test]
fn a_cycle_is_found_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod x;\n").unwrap();
    std::fs::write(src.join("a/x.rs"), "use crate::b::thing; // crate::c\n").unwrap();
    std::fs::write(src.join("b.rs"), "fn f() { super::a::x::g() }\n").unwrap();
    let edges = edges(src);
    let c = cycle(&edges).expect("a::x -> b -> a::x");
    assert_eq!(shown(&c), "a::x -> b -> a::x");
}
