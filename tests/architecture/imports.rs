//! What each file names of the others: the paths of its `use` items (grouped `use crate::{a::b, c}`, `self`,
//! `super`, globs and renames, `pub use` re-exports included) and the paths written inline in its code
//! (`crate::x::y`, `super::x`, `child_module::f`, `alias::g`), also inside macro invocations and `macro_rules!`
//! bodies. Each path is resolved to the deepest module that exists, and so to the file defining that module:
//! `crate::a::b::Item` goes to `a/b.rs` (or `a/b/mod.rs`) when module `a::b` exists, else to `a.rs`.
//!
//! A path's first segment is read as Rust 2018 reads it: `crate` (or `$crate`), `self`, `super`, the library's
//! name (in a binary), a child module of the current module, or a name a `use` bound there; anything else is
//! another crate, the prelude or a local name, and makes no edge. A name a `use` bound to an item (`Store`,
//! `Cleanup::Done`) adds no edge of its own: the `use` made it.
//!
//! Not counted: `mod` declarations (containment), visibility paths (`pub(super)`, `pub(in crate::x)`), doc
//! comments and string literals, paths into other crates, and everything under `#[cfg(test)]`, `#[test]` or
//! `#[tokio::test]` (test modules, test files, test functions).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Item, UseTree};

use super::modules::{CrateId, ModKey, ModuleTree, is_test_only};

/// The edges of one file: the file each names, with the paths (as written) that name it.
pub type FileEdges = BTreeMap<usize, BTreeSet<String>>;

/// The edges of every file of the tree, by file index (test-only files have none).
pub fn collect(tree: &ModuleTree) -> Vec<FileEdges> {
    tree.files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            if file.test_only {
                return FileEdges::new();
            }
            let mut bindings = HashMap::new();
            gather_bindings(&file.ast.items, &(file.krate.clone(), file.module.clone()), &mut bindings);
            let mut v = Collector {
                tree,
                file: index,
                scope: vec![(file.krate.clone(), file.module.clone())],
                bindings,
                edges: FileEdges::new(),
            };
            for item in &file.ast.items {
                v.visit_item(item);
            }
            v.edges
        })
        .collect()
}

/// Names bound by `use` items in a module (at any depth of its functions, but not in its inline child
/// modules): the name and the path it stands for, relative as written.
type Bindings = HashMap<ModKey, HashMap<String, Vec<String>>>;

/// Collects the names the `use` items among `items` bind, for `module` and each of its inline modules.
fn gather_bindings(items: &[Item], module: &ModKey, out: &mut Bindings) {
    struct Uses<'a> {
        module: &'a ModKey,
        out: &'a mut Bindings,
    }
    impl<'ast> Visit<'ast> for Uses<'_> {
        fn visit_item(&mut self, item: &'ast Item) {
            match item {
                Item::Mod(m) => {
                    if let Some((_, items)) = &m.content {
                        let child =
                            (self.module.0.clone(), [self.module.1.clone(), vec![m.ident.to_string()]].concat());
                        gather_bindings(items, &child, self.out);
                    }
                }
                Item::Use(u) => {
                    for (path, name) in flatten_use(&u.tree) {
                        if let Some(name) = name {
                            self.out.entry(self.module.clone()).or_default().insert(name, path);
                        }
                    }
                }
                other => visit::visit_item(self, other),
            }
        }
    }
    let mut uses = Uses { module, out };
    for item in items {
        uses.visit_item(item);
    }
}

/// The paths of a `use` tree, each with the name it binds (`None` for a glob or `_`).
fn flatten_use(tree: &UseTree) -> Vec<(Vec<String>, Option<String>)> {
    fn walk(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(&p.tree, prefix, out);
                prefix.pop();
            }
            UseTree::Name(n) => {
                let name = n.ident.to_string();
                if name == "self" {
                    out.push((prefix.clone(), prefix.last().cloned()));
                } else {
                    out.push(([prefix.clone(), vec![name.clone()]].concat(), Some(name)));
                }
            }
            UseTree::Rename(r) => {
                let name = r.ident.to_string();
                let path = if name == "self" { prefix.clone() } else { [prefix.clone(), vec![name]].concat() };
                let alias = r.rename.to_string();
                out.push((path, (alias != "_").then_some(alias)));
            }
            UseTree::Glob(_) => out.push((prefix.clone(), None)),
            UseTree::Group(g) => {
                for t in &g.items {
                    walk(t, prefix, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

/// Walks one file, module by module, recording every path that names another file.
struct Collector<'a> {
    tree: &'a ModuleTree,
    file: usize,
    /// The module being visited (the file's, then inline modules').
    scope: Vec<ModKey>,
    bindings: Bindings,
    edges: FileEdges,
}

impl Collector<'_> {
    fn here(&self) -> &ModKey {
        self.scope.last().unwrap_or_else(|| unreachable!("the scope starts with the file's module"))
    }

    /// The absolute module path a path written in `here` stands for, or `None` when it leaves the package's
    /// crates (another crate, the prelude, a local name).
    fn absolutize(&self, here: &ModKey, segs: &[String], depth: usize) -> Option<ModKey> {
        let (first, rest) = segs.split_first()?;
        let (krate, module) = here;
        match first.as_str() {
            "crate" | "$crate" => Some((krate.clone(), rest.to_vec())),
            "self" => Some((krate.clone(), [module.clone(), rest.to_vec()].concat())),
            "super" => {
                let mut base = module.clone();
                let mut rest = segs;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                Some((krate.clone(), [base, rest.to_vec()].concat()))
            }
            name if name == self.tree.lib_name && *krate != CrateId::Lib => Some((CrateId::Lib, rest.to_vec())),
            name if self.tree.has_module(krate, &[module.clone(), vec![name.to_string()]].concat()) => {
                Some((krate.clone(), [module.clone(), segs.to_vec()].concat()))
            }
            name => {
                let bound = self.bindings.get(here)?.get(name)?;
                if depth > 8 || bound.len() == 1 && bound[0] == name {
                    return None;
                }
                let target = self.absolutize(here, bound, depth + 1)?;
                Some((target.0, [target.1, rest.to_vec()].concat()))
            }
        }
    }

    /// Whether a name bound by a `use` in `here` stands for a module.
    fn names_module(&self, here: &ModKey, name: &str) -> bool {
        self.absolutize(here, &[name.to_string()], 0).is_some_and(|m| self.tree.file_of(&m).is_some())
    }

    /// Records an edge to the file of the deepest existing module on `segs`, labelled with the path as written.
    /// A path that starts with a name a `use` brought in adds nothing when that name is an item (`Store`,
    /// `Cleanup::Done` after `use crate::controller::resource::deletion::Cleanup`): its `use` made the edge. Through a module's name
    /// (`observer::monitor` after `use super::observer`) it may go deeper, so it counts.
    fn record(&mut self, segs: &[String]) {
        let here = self.here().clone();
        if let Some(first) = segs.first()
            && !self.tree.has_module(&here.0, &[here.1.clone(), vec![first.clone()]].concat())
            && self.bindings.get(&here).is_some_and(|b| b.contains_key(first))
            && !self.names_module(&here, first)
        {
            return;
        }
        let Some((krate, path)) = self.absolutize(&here, segs, 0) else {
            return;
        };
        let target = (0..=path.len()).rev().find_map(|n| self.tree.file_of(&(krate.clone(), path[..n].to_vec())));
        if let Some(target) = target
            && target != self.file
        {
            self.edges.entry(target).or_default().insert(segs.join("::"));
        }
    }

    /// Finds the paths in a macro's tokens: identifiers joined by `::` (with `$crate` read as `crate`).
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.scan_tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(first) => {
                    let dollar = i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '$');
                    let leading = i > 1 && is_path_sep(&tokens, i - 2);
                    let mut segs = vec![if dollar { format!("${first}") } else { first.to_string() }];
                    let mut j = i + 1;
                    while is_path_sep(&tokens, j)
                        && let Some(TokenTree::Ident(next)) = tokens.get(j + 2)
                    {
                        segs.push(next.to_string());
                        j += 3;
                    }
                    if !leading {
                        self.record(&segs);
                    }
                    i = j;
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => i += 1,
            }
        }
    }
}

/// Whether `tokens[i..]` starts with `::`.
fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':'
            && a.spacing() == proc_macro2::Spacing::Joint)
}

/// The attributes of an item (to find `#[cfg(test)]`).
fn item_attrs(item: &Item) -> &[syn::Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if is_test_only(item_attrs(item)) {
            return;
        }
        match item {
            Item::Mod(m) => {
                // A declared file is visited as a file of its own; an inline module is visited here, in its scope.
                if let Some((_, items)) = &m.content {
                    let here = self.here().clone();
                    self.scope.push((here.0, [here.1, vec![m.ident.to_string()]].concat()));
                    for item in items {
                        self.visit_item(item);
                    }
                    self.scope.pop();
                }
            }
            Item::Use(u) => {
                for (path, _) in flatten_use(&u.tree) {
                    self.record(&path);
                }
            }
            other => visit::visit_item(self, other),
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.record(&segs);
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        self.scan_tokens(mac.tokens.clone());
    }

    /// `pub(super)`, `pub(crate)`, `pub(in crate::x)`: who may see an item, not what it uses.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}
}
