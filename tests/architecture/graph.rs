//! The file-level import graph of a package's `src/`, its cycles (strongly connected components, by Tarjan's
//! algorithm) and its layering violations (an edge from one directory to another it must not use).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::imports;
use super::modules::ModuleTree;

/// One edge: a file that names another, with the paths (as written) that name it.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The file that imports.
    pub from: PathBuf,
    /// The file imported.
    pub to: PathBuf,
    /// The paths that tie them, e.g. `super::server::lock`.
    pub names: BTreeSet<String>,
}

/// A cycle: files that all reach each other through imports, and the edges between them.
#[derive(Clone, Debug)]
pub struct Cycle {
    /// The files, sorted.
    pub files: Vec<PathBuf>,
    /// Every edge inside the cycle.
    pub edges: Vec<Edge>,
}

impl Cycle {
    /// The cycle as text: its files, then each edge with the names that tie the pair.
    pub fn describe(&self) -> String {
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        let mut out = format!("cycle of {} files: {}\n", files.len(), files.join(", "));
        for e in &self.edges {
            let names: Vec<&str> = e.names.iter().map(String::as_str).collect();
            let _ = writeln!(out, "  {} -> {}: {}", e.from.display(), e.to.display(), names.join(", "));
        }
        out
    }
}

/// The import graph of a package.
pub struct ImportGraph {
    /// Every file of the library and binaries that is not test-only, sorted.
    pub files: Vec<PathBuf>,
    /// Files left out as test-only (declared under `#[cfg(test)]`).
    pub test_only: Vec<PathBuf>,
    /// Edges by (from, to) index into `files`.
    edges: BTreeMap<(usize, usize), BTreeSet<String>>,
    /// What could not be read or resolved while loading (an unparsable file, a `mod` without a file).
    pub problems: Vec<String>,
}

impl ImportGraph {
    /// Builds the graph of `root/src`; `lib_name` is the library's crate name, as binaries write it.
    pub fn build(root: &Path, lib_name: &str) -> ImportGraph {
        let tree = ModuleTree::load(root, lib_name);
        let per_file = imports::collect(&tree);
        let mut files: Vec<PathBuf> = tree.files.iter().filter(|f| !f.test_only).map(|f| f.rel.clone()).collect();
        files.sort();
        files.dedup();
        let test_only = tree.files.iter().filter(|f| f.test_only).map(|f| f.rel.clone()).collect();
        let index = |p: &PathBuf| files.binary_search(p).ok();
        let mut edges: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
        for (from, targets) in per_file.iter().enumerate() {
            let Some(a) = index(&tree.files[from].rel) else {
                continue;
            };
            for (to, names) in targets {
                if let Some(b) = index(&tree.files[*to].rel)
                    && a != b
                {
                    edges.entry((a, b)).or_default().extend(names.iter().cloned());
                }
            }
        }
        ImportGraph { files, test_only, edges, problems: tree.problems }
    }

    /// Every edge.
    pub fn edges(&self) -> Vec<Edge> {
        self.edges.keys().map(|&(a, b)| self.edge(a, b)).collect()
    }

    fn edge(&self, a: usize, b: usize) -> Edge {
        Edge {
            from: self.files[a].clone(),
            to: self.files[b].clone(),
            names: self.edges.get(&(a, b)).cloned().unwrap_or_default(),
        }
    }

    /// The cycles: every strongly connected component of more than one file, with its inner edges.
    pub fn cycles(&self) -> Vec<Cycle> {
        let n = self.files.len();
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut successors = vec![Vec::new(); n];
        for &(a, b) in self.edges.keys() {
            successors[a].push(b);
        }
        let mut t = Tarjan {
            successors: &successors,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            components: &mut out,
        };
        for v in 0..n {
            if t.index[v].is_none() {
                t.connect(v);
            }
        }
        let mut cycles: Vec<Cycle> = out
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|mut members| {
                members.sort();
                let inner: Vec<Edge> = self
                    .edges
                    .keys()
                    .filter(|(a, b)| members.contains(a) && members.contains(b))
                    .map(|&(a, b)| self.edge(a, b))
                    .collect();
                Cycle { files: members.iter().map(|&i| self.files[i].clone()).collect(), edges: inner }
            })
            .collect();
        cycles.sort_by(|a, b| a.files.cmp(&b.files));
        cycles
    }

    /// The edges from a file under `from_dir` to a file under `to_dir` (e.g. `src/runtime` to `src/controller`).
    pub fn edges_between(&self, from_dir: &str, to_dir: &str) -> Vec<Edge> {
        self.edges().into_iter().filter(|e| e.from.starts_with(from_dir) && e.to.starts_with(to_dir)).collect()
    }
}

/// Tarjan's strongly connected components (recursive: a module graph is shallow).
struct Tarjan<'a> {
    successors: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: &'a mut Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn connect(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.successors[v] {
            match self.index[w] {
                None => {
                    self.connect(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}
