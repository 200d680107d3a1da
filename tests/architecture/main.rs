//! Architecture rules of `src/`, checked on every `cargo test` (so by `make test`):
//!
//! 1. no import cycle between files: the file-level graph of `use` items and inline `crate::` / `super::` /
//!    module paths (see [`imports`]) has no strongly connected component of more than one file;
//! 2. layering: nothing under `src/runtime/` imports anything under `src/controller/`, and more widely each
//!    part of the crate imports only the parts below it in [`LAYERS`] (the table `docs/architecture.md`
//!    draws).
//!
//! A `mod` declaration is containment, not an edge; a `use` (a `pub use` re-export included) or a path is. So a
//! `mod.rs` that re-exports or calls its children must not also hold what they import from it: that goes in a
//! file of its own (as `sim/store/data.rs`, `sim/server/app.rs`, `cimi/model/common.rs` do). Code under
//! `#[cfg(test)]` does not count.
//!
//! The checker is tested on small fixture trees under `tests/fixtures/architecture/`: a three-file loop, a
//! runtime -> controller edge, and a clean tree (with the constructs a reader could mistake for cycles: a test
//! module importing back, a `mod` declaration, a `pub(super)` visibility).

mod graph;
mod imports;
mod modules;

use std::path::{Path, PathBuf};

use graph::{Cycle, Edge, ImportGraph};

/// The library's crate name, as the binaries write it.
const LIB_NAME: &str = "cimi_operator";

/// The directory of the package being tested.
fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The graph of a fixture tree under `tests/fixtures/architecture/`.
fn fixture(name: &str) -> ImportGraph {
    let graph = ImportGraph::build(&package_root().join("tests/fixtures/architecture").join(name), "fixture");
    assert!(graph.problems.is_empty(), "fixture {name} loads cleanly: {:?}", graph.problems);
    graph
}

fn describe(cycles: &[Cycle]) -> String {
    cycles.iter().map(Cycle::describe).collect::<Vec<_>>().join("\n")
}

fn describe_edges(edges: &[Edge]) -> String {
    edges
        .iter()
        .map(|e| {
            let names: Vec<&str> = e.names.iter().map(String::as_str).collect();
            format!("  {} -> {}: {}\n", e.from.display(), e.to.display(), names.join(", "))
        })
        .collect()
}

#[test]
fn src_has_no_import_cycle_and_runtime_does_not_import_controller() {
    let graph = ImportGraph::build(&package_root(), LIB_NAME);
    assert!(graph.problems.is_empty(), "every file of src/ is read: {:?}", graph.problems);
    assert!(graph.files.len() > 50, "the module tree is found from src/lib.rs: {:?}", graph.files);
    assert!(graph.files.contains(&PathBuf::from("src/sim/mod.rs")), "sim is in the tree");
    println!(
        "import graph of src/: {} files, {} edges ({} test-only files left out: {})",
        graph.files.len(),
        graph.edges().len(),
        graph.test_only.len(),
        graph.test_only.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );

    let cycles = graph.cycles();
    let layering = graph.edges_between("src/runtime", "src/controller");
    assert!(
        cycles.is_empty() && layering.is_empty(),
        "import cycles between files of src/ (break each by moving what both sides need into a module of its \
         own):\n{}\nruntime -> controller imports (runtime must not depend on the controllers):\n{}",
        describe(&cycles),
        describe_edges(&layering)
    );
}

/// What each top-level part of `src/` may import, lowest first: a part may use only those it lists. `lib.rs` and
/// the binaries wire everything and are not limited.
const LAYERS: &[(&str, &[&str])] = &[
    ("names", &[]),
    ("cimi", &[]),
    ("api", &["cimi", "names"]),
    ("sim", &["cimi"]),
    ("runtime", &["api", "cimi", "names"]),
    ("controller", &["api", "cimi", "names", "runtime"]),
    ("operator", &["api", "cimi", "names", "runtime", "controller"]),
    ("plugin", &["api", "cimi", "names", "controller"]),
    ("devenv", &["api", "cimi", "names", "runtime", "sim", "operator"]),
];

/// The top-level part of `src/` a file belongs to (`src/cimi/model/mod.rs` -> `cimi`, `src/names.rs` -> `names`).
fn part_of(path: &Path) -> String {
    let mut parts = path.components().skip(1);
    let first = parts.next().map(|c| c.as_os_str().to_string_lossy().to_string()).unwrap_or_default();
    first.strip_suffix(".rs").map(str::to_string).unwrap_or(first)
}

/// The edges of `graph` that go from one part to another the table does not let it use.
fn layer_violations(graph: &ImportGraph, layers: &[(&str, &[&str])]) -> Vec<Edge> {
    graph
        .edges()
        .into_iter()
        .filter(|e| {
            let (from, to) = (part_of(&e.from), part_of(&e.to));
            from != to
                && layers
                    .iter()
                    .find(|(part, _)| *part == from)
                    .is_some_and(|(_, allowed)| !allowed.contains(&to.as_str()))
        })
        .collect()
}

#[test]
fn every_part_of_src_imports_only_the_layers_below_it() {
    let graph = ImportGraph::build(&package_root(), LIB_NAME);
    let parts: std::collections::BTreeSet<String> = graph.files.iter().map(|f| part_of(f)).collect();
    for part in &parts {
        assert!(
            matches!(part.as_str(), "lib" | "bin") || LAYERS.iter().any(|(p, _)| p == part),
            "src/{part} has a place in LAYERS (and in docs/architecture.md)"
        );
    }
    let violations = layer_violations(&graph, LAYERS);
    assert!(
        violations.is_empty(),
        "imports against the layers of docs/architecture.md:\n{}",
        describe_edges(&violations)
    );
}

#[test]
fn an_import_against_the_layers_is_caught() {
    let graph = fixture("layering");
    // In the fixture, runtime imports the controller: a table that puts runtime below the controller sees it.
    let violations = layer_violations(&graph, &[("runtime", &[]), ("controller", &["runtime"])]);
    assert_eq!(violations.len(), 1, "{}", describe_edges(&violations));
    assert_eq!(violations[0].from, Path::new("src/runtime/mod.rs"));
    let allowed = layer_violations(&graph, &[("runtime", &["controller"]), ("controller", &["runtime"])]);
    assert!(allowed.is_empty(), "what the table allows passes: {}", describe_edges(&allowed));
}

#[test]
fn a_three_file_loop_is_caught_with_the_names_that_tie_it() {
    let graph = fixture("cycle");
    let cycles = graph.cycles();
    println!("{}", describe(&cycles));
    assert_eq!(cycles.len(), 1, "one cycle:\n{}", describe(&cycles));
    let files: Vec<String> = cycles[0].files.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(files, ["src/a.rs", "src/b.rs", "src/c.rs"]);
    let ties: Vec<(String, String, Vec<String>)> = cycles[0]
        .edges
        .iter()
        .map(|e| (e.from.display().to_string(), e.to.display().to_string(), e.names.iter().cloned().collect()))
        .collect();
    assert_eq!(
        ties,
        [
            // A grouped `use` item.
            ("src/a.rs".into(), "src/b.rs".into(), vec!["crate::b::Bee".into()]),
            // An inline path in code, through `super`.
            ("src/b.rs".into(), "src/c.rs".into(), vec!["super::c::see".into()]),
            // A path inside a macro invocation, through a `use … as` alias of a module.
            ("src/c.rs".into(), "src/a.rs".into(), vec!["root::a::AY".into()]),
        ]
    );
    let text = describe(&cycles);
    assert!(text.contains("src/b.rs -> src/c.rs: super::c::see"), "the report names the pair and the path:\n{text}");
}

#[test]
fn a_runtime_to_controller_edge_is_caught() {
    let graph = fixture("layering");
    assert!(graph.cycles().is_empty(), "no cycle in the layering fixture:\n{}", describe(&graph.cycles()));
    let edges = graph.edges_between("src/runtime", "src/controller");
    println!("{}", describe_edges(&edges));
    assert_eq!(edges.len(), 1, "one runtime -> controller edge:\n{}", describe_edges(&edges));
    assert_eq!(edges[0].from, Path::new("src/runtime/mod.rs"));
    assert_eq!(edges[0].to, Path::new("src/controller/reconcile.rs"));
    assert!(edges[0].names.contains("crate::controller::reconcile::run"), "{:?}", edges[0].names);
    // The allowed direction is an edge too, and not a violation.
    assert!(graph.edges_between("src/controller", "src/runtime").len() == 1);
}

#[test]
fn a_clean_tree_passes() {
    let graph = fixture("clean");
    let cycles = graph.cycles();
    assert!(cycles.is_empty(), "no cycle:\n{}", describe(&cycles));
    assert!(graph.edges_between("src/runtime", "src/controller").is_empty());
    assert_eq!(graph.test_only, [PathBuf::from("src/store/tests.rs")], "a test file is found and left out");
    // The edges it has are the real ones: a child naming its parent, re-exports, a binary into the library.
    let edges: Vec<(String, String)> =
        graph.edges().iter().map(|e| (e.from.display().to_string(), e.to.display().to_string())).collect();
    assert_eq!(
        edges,
        [
            ("src/bin/tool.rs".into(), "src/store/mod.rs".into()),
            ("src/lib.rs".into(), "src/store/mod.rs".into()),
            ("src/store/jobs.rs".into(), "src/store/mod.rs".into()),
            ("src/store/mod.rs".into(), "src/sync.rs".into()),
        ],
        "{:#?}",
        graph.edges()
    );
}
