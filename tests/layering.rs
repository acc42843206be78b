//! The crate's imports run one way: a module may use only its own layer and the layers below it,
//! and no two top-level modules depend on each other. This test reads every `src/**/*.rs`, finds
//! each `crate::` and `super::` path (in `use` trees, however nested or spread over lines, and
//! inline in code; comments and string literals are skipped), resolves it to a module, and fails
//! naming the file and the import when a path points up, when it points at a module in no layer,
//! or when the top-level modules form a cycle. A new module must be given a layer in [`LAYERS`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, low to high. A module's layer is that of its longest listed prefix (`a::b` before
/// `a`). Listed modules need not exist (one may be in the middle of a move).
const LAYERS: &[(u32, &str, &[&str])] = &[
    // Leaves: byte ropes, counters, the errno table, sd_notify, log setup. Import nothing above.
    (
        0,
        "leaves",
        &["rope", "metrics", "error", "notify", "logging"],
    ),
    // Formats: sans-I/O parsers and layouts (Zarr, TIFF, GRIB2, HDF5) of the bytes they are
    // given; they never fetch.
    (1, "formats", &["formats"]),
    // Settings: what a mount is (MountConfig), dataset presets, credential providers and keys.
    (2, "settings", &["catalog", "config", "credentials"]),
    // Store: object_store backends, the live metered backend (SIGHUP swaps it), multi-source
    // routing.
    (3, "store", &["store"]),
    // Cache: a range store (memory tier, disk tier) with no format knowledge.
    (4, "cache", &["cache"]),
    // Reader: read policy (sequential window, random-read pieces, planned units, planners);
    // write: staging on local disk, the journal, uploads after the last close.
    (5, "reader", &["reader", "write"]),
    // Views and namespace: converted views read through the caches; inodes, listings, metadata.
    (6, "views", &["convert", "namespace"]),
    // Filesystem operations, with no fuser types.
    (7, "fs", &["fs"]),
    // The thin fuser adapter.
    (8, "fuse", &["fuse"]),
    // Mount assembly (config -> credentials -> store -> caches -> fs -> fuse) and the daemon's
    // process concerns (fork, readiness, signals, unmount).
    (9, "mount", &["mount", "daemon"]),
    // Front ends that turn flags, config files and mount(8) options into a MountConfig, the
    // demo dataset, and the commands that are not a mount (`geomount cache`, `geomount
    // prefetch`).
    (
        10,
        "front",
        &["resolve", "config_file", "mount_helper", "demo", "commands"],
    ),
    // The command line: only the binary (src/main.rs) imports it. `fuzzing`: entry points for
    // the fuzz targets (fuzz/), which nothing in the crate imports.
    (11, "entry", &["cli", "fuzzing"]),
];

/// The crate's name, as the binary (`src/main.rs`) spells paths into the library.
const CRATE: &str = "geomount";
/// The only library modules the binary may name.
const BINARY_USES: &[&str] = &["cli"];

/// `(layer, layer name)` of a module path, by its longest listed prefix.
fn layer_of(path: &[String]) -> Option<(u32, &'static str)> {
    let mut best: Option<(usize, u32, &'static str)> = None;
    for &(layer, name, modules) in LAYERS {
        for m in modules {
            let segs: Vec<&str> = m.split("::").collect();
            let matches = segs.len() <= path.len() && segs.iter().zip(path).all(|(a, b)| a == b);
            if matches && best.is_none_or(|(n, _, _)| segs.len() > n) {
                best = Some((segs.len(), layer, name));
            }
        }
    }
    best.map(|(_, l, n)| (l, n))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Rust tokens relevant to paths: identifiers (and number-like words), `::` and single
/// punctuation. Comments, string, byte-string, raw-string and char literals are dropped;
/// lifetimes lose their quote.
fn tokenize(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1);
        } else if ch == '\'' {
            if next == Some('\\') {
                // An escaped char literal: past the escaped char, up to the closing quote.
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                // A lifetime or label: the name follows as an identifier.
                i += 1;
            }
        } else if ident_char(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let at = c.get(i).copied();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            let str_prefix = matches!(word.as_str(), "b" | "c");
            if raw_prefix && matches!(at, Some('"') | Some('#')) {
                let mut hashes = 0;
                while c.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if c.get(i) == Some(&'"') {
                    i = skip_raw_string(&c, i + 1, hashes);
                } else {
                    // `r#ident`: a raw identifier.
                    let start = i;
                    while i < c.len() && ident_char(c[i]) {
                        i += 1;
                    }
                    out.push(Tok::Ident(c[start..i].iter().collect()));
                }
            } else if str_prefix && at == Some('"') {
                i = skip_string(&c, i + 1);
            } else if word == "b" && at == Some('\'') {
                i += 1;
                if c.get(i) == Some(&'\\') {
                    i += 1;
                }
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else {
                out.push(Tok::Ident(word));
            }
        } else if ch == ':' && next == Some(':') {
            out.push(Tok::Path);
            i += 2;
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

/// Index just past the `"` closing a string whose body starts at `i`.
fn skip_string(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Index just past the `"` and `hashes` `#`s closing a raw string whose body starts at `i`.
fn skip_raw_string(c: &[char], mut i: usize, hashes: usize) -> usize {
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// Reads a use tree (or a plain path) starting at `toks[*i]`, after a `::`; pushes every full
/// path it names onto `out`, each `prefix` followed by its segments (`self` in a group names
/// the group's own path).
fn read_tree(toks: &[Tok], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(*i) {
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        Some(_) => {
                            read_tree(toks, i, &path, out);
                            // Past an `as name` to the next item of the group.
                            while !matches!(
                                toks.get(*i),
                                None | Some(Tok::Punct(',')) | Some(Tok::Punct('}'))
                            ) {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            Some(Tok::Ident(seg)) => {
                if seg != "self" {
                    path.push(seg.clone());
                }
                *i += 1;
                if toks.get(*i) == Some(&Tok::Path) {
                    *i += 1;
                } else {
                    out.push(path);
                    return;
                }
            }
            _ => {
                // `*`, or the `<` of generic arguments: the path so far.
                out.push(path);
                return;
            }
        }
    }
}

/// The module paths a file at module `module` names through `crate::` and `super::` (resolved
/// to absolute paths, without the leading `crate`), in order.
fn imports(src: &str, module: &[String]) -> Vec<Vec<String>> {
    let toks = tokenize(src);
    let mut out = Vec::new();
    // Inline `mod name { .. }` blocks: (name, brace depth outside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                i += 1;
            }
            Tok::Ident(w)
                if w == "mod"
                    && matches!(toks.get(i + 2), Some(Tok::Punct('{')))
                    && matches!(toks.get(i + 1), Some(Tok::Ident(_))) =>
            {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    inline.push((name.clone(), depth));
                }
                i += 2;
            }
            Tok::Ident(w)
                if (w == "crate" || w == "super")
                    && toks.get(i + 1) == Some(&Tok::Path)
                    && (i == 0 || !matches!(toks[i - 1], Tok::Punct('$') | Tok::Path)) =>
            {
                let mut here: Vec<String> = module.to_vec();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                let root = if w == "crate" {
                    i += 2;
                    Vec::new()
                } else {
                    while toks.get(i) == Some(&Tok::Ident("super".into()))
                        && toks.get(i + 1) == Some(&Tok::Path)
                    {
                        here.pop();
                        i += 2;
                    }
                    here
                };
                read_tree(&toks, &mut i, &root, &mut out);
            }
            _ => i += 1,
        }
    }
    out
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a library file defines (`a/b.rs` and `a/b/mod.rs` are `a::b`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut segs: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    segs
}

struct Scan {
    /// Human-readable rule breaks, one per offending import.
    violations: Vec<String>,
    /// Top-level module -> top-level modules it imports, with one `file: path` as evidence.
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

fn scan(src_dir: &Path) -> Scan {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let mut violations = Vec::new();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(src_dir).expect("under src");
        let shown = format!("src/{}", rel.display());
        let text = std::fs::read_to_string(file).expect("readable source");
        if rel == Path::new("main.rs") {
            let toks = tokenize(&text);
            for (k, t) in toks.iter().enumerate() {
                let next = |n: usize| toks.get(k + n);
                if *t == Tok::Ident("crate".into()) && next(1) == Some(&Tok::Path) {
                    violations.push(format!("{shown}: the binary has no `crate::` paths of its own: move the code into the library"));
                }
                if *t == Tok::Ident(CRATE.into()) && next(1) == Some(&Tok::Path) {
                    match next(2) {
                        Some(Tok::Ident(m)) if BINARY_USES.contains(&m.as_str()) => {}
                        other => violations.push(format!(
                            "{shown}: the binary may name only {BINARY_USES:?} of the library, not {other:?}"
                        )),
                    }
                }
            }
            continue;
        }
        if rel == Path::new("lib.rs") {
            // The crate root only declares modules; a path here would be a re-export to a
            // layer nobody can name.
            for p in imports(&text, &[]) {
                violations.push(format!(
                    "{shown}: the crate root names `crate::{}`: import from the module itself",
                    p.join("::")
                ));
            }
            continue;
        }
        let module = module_of(rel);
        let Some((own, own_name)) = layer_of(&module) else {
            violations.push(format!(
                "{shown}: module `{}` is in no layer: add it to LAYERS in tests/layering.rs",
                module.join("::")
            ));
            continue;
        };
        for p in imports(&text, &module) {
            let shown_path = format!("crate::{}", p.join("::"));
            let Some((theirs, their_name)) = layer_of(&p) else {
                violations.push(format!(
                    "{shown}: `{shown_path}` is in no layer (a re-export at the crate root, or a module missing from LAYERS)"
                ));
                continue;
            };
            if theirs > own {
                violations.push(format!(
                    "{shown}: `{shown_path}` (layer {theirs} {their_name}) is above `{}` (layer {own} {own_name})",
                    module.join("::")
                ));
            }
            if p[0] != module[0] {
                edges
                    .entry(module[0].clone())
                    .or_default()
                    .entry(p[0].clone())
                    .or_insert_with(|| format!("{shown}: {shown_path}"));
            }
        }
    }
    Scan { violations, edges }
}

/// Strongly connected components of more than one node (Tarjan), each sorted.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(out) = s.edges.get(v) {
            for w in out.keys() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.found.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(a, out)| std::iter::once(a.as_str()).chain(out.keys().map(|b| b.as_str())))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn imports_run_down_the_layers_and_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let scan = scan(&src);
    let mut problems = scan.violations;
    for comp in cycles(&scan.edges) {
        let evidence: Vec<String> = comp
            .iter()
            .flat_map(|a| {
                scan.edges[a]
                    .iter()
                    .filter(|(b, _)| comp.contains(b))
                    .map(move |(b, why)| format!("    {a} -> {b} ({why})"))
            })
            .collect();
        problems.push(format!(
            "cycle between {}:\n{}",
            comp.join(", "),
            evidence.join("\n")
        ));
    }
    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The scan saw the crate: the fs layer imports the store, the daemon the assembly.
    assert!(
        scan.edges
            .get("fs")
            .is_some_and(|e| e.contains_key("store"))
    );
}

#[test]
fn the_scanner_finds_grouped_inline_and_relative_paths_only_in_code() {
    let src = r###"
        //! Docs name [`crate::cli`] and `use crate::daemon;` without importing them.
        use crate::{
            store::{self, build::{build_backend, endpoint_display as shown}},
            rope::Rope,
        };
        use super::{sibling, other::Thing};
        /* use crate::fuse; /* nested */ use crate::fuse; */
        const S: &str = "crate::mount::x";
        const R: &str = r#"crate::demo "quoted" "#;
        const C: char = '{';
        const B: u8 = b'}';
        fn f<'a>(x: &'a str) -> usize {
            macro_rules! m { () => { $crate::ignored::x }; }
            crate::reader::MAX_READ as usize + crate::cache::block::BlockCache::<u8>::new()
        }
        mod tests {
            use super::*;
            use super::super::up;
        }
        fn g() { let _ = crate::metrics::Metrics::default(); }
    "###;
    let module = vec!["a".to_string(), "b".to_string()];
    let found: Vec<String> = imports(src, &module).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        found,
        [
            "store",
            "store::build::build_backend",
            "store::build::endpoint_display",
            "rope::Rope",
            "a::sibling",
            "a::other::Thing",
            "reader::MAX_READ",
            "cache::block::BlockCache",
            "a::b",
            "a::up",
            "metrics::Metrics::default",
        ]
    );
    let path = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(layer_of(&path("store::build")), Some((3, "store")));
    assert_eq!(layer_of(&path("cli")), Some((11, "entry")));
    assert_eq!(layer_of(&path("somewhere_new")), None);
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x"), ("z", "w")] {
        edges
            .entry(a.into())
            .or_default()
            .insert(b.into(), String::new());
    }
    assert_eq!(cycles(&edges), [["x", "y", "z"]]);
}
