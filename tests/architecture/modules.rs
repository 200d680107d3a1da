//! The module tree of a package's `src/`: every file reached from a crate root (`lib.rs`, `main.rs`,
//! `bin/*.rs`, `bin/*/main.rs`) through `mod` declarations, with the module path each file (and each inline
//! `mod name { … }`) defines.
//!
//! A `mod` declaration is containment, not an import: it makes no edge of the import graph. A module declared
//! under `#[cfg(test)]` (and every file below it) is marked test-only: its imports do not count, because they
//! never reach a build that ships.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syn::{Attribute, Item, Meta};

/// Which crate of the package a module belongs to: the library, or one binary (by its root file).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrateId {
    /// `src/lib.rs` and everything below it.
    Lib,
    /// A binary: `src/main.rs`, `src/bin/x.rs` or `src/bin/x/main.rs`, by its root file.
    Bin(PathBuf),
}

/// A module: its crate and its path from the crate root (empty for the root).
pub type ModKey = (CrateId, Vec<String>);

/// One parsed source file.
pub struct SourceFile {
    /// The path relative to the package root, e.g. `src/sim/store.rs`.
    pub rel: PathBuf,
    /// The crate it belongs to.
    pub krate: CrateId,
    /// The module path the file defines.
    pub module: Vec<String>,
    /// Declared under `#[cfg(test)]` (directly or through a parent): its imports are ignored.
    pub test_only: bool,
    /// The syntax tree.
    pub ast: syn::File,
}

/// Every module and file of a package's `src/`.
pub struct ModuleTree {
    /// The package root (the directory holding `src/`).
    pub root: PathBuf,
    /// The library's name as other crates write it (`cimi_operator`), for the binaries' paths into it.
    pub lib_name: String,
    /// The files, in the order they were reached.
    pub files: Vec<SourceFile>,
    /// Every module (file or inline) and the index of the file that defines it.
    pub modules: BTreeMap<ModKey, usize>,
    /// Files that could not be read or parsed, and `mod` declarations without a file.
    pub problems: Vec<String>,
}

impl ModuleTree {
    /// Reads the module tree under `root/src`. `lib_name` is the library's crate name (`-` written `_`).
    pub fn load(root: &Path, lib_name: &str) -> ModuleTree {
        let mut tree = ModuleTree {
            root: root.to_path_buf(),
            lib_name: lib_name.to_string(),
            files: Vec::new(),
            modules: BTreeMap::new(),
            problems: Vec::new(),
        };
        let src = root.join("src");
        if src.join("lib.rs").is_file() {
            tree.load_file(&CrateId::Lib, &src.join("lib.rs"), Vec::new(), &src, false);
        }
        let mut bins = Vec::new();
        if src.join("main.rs").is_file() {
            bins.push(src.join("main.rs"));
        }
        if let Ok(entries) = std::fs::read_dir(src.join("bin")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "rs") {
                    bins.push(path);
                } else if path.join("main.rs").is_file() {
                    bins.push(path.join("main.rs"));
                }
            }
        }
        bins.sort();
        for bin in bins {
            let krate = CrateId::Bin(tree.rel(&bin));
            let dir = bin.parent().map(Path::to_path_buf).unwrap_or_default();
            tree.load_file(&krate, &bin, Vec::new(), &dir, false);
        }
        tree
    }

    /// The file that defines a module, if there is such a module.
    pub fn file_of(&self, key: &ModKey) -> Option<usize> {
        self.modules.get(key).copied()
    }

    /// Whether a module exists.
    pub fn has_module(&self, krate: &CrateId, path: &[String]) -> bool {
        self.modules.contains_key(&(krate.clone(), path.to_vec()))
    }

    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }

    /// Parses one file defining `module`; `dir` is where the files of its child modules live.
    fn load_file(&mut self, krate: &CrateId, path: &Path, module: Vec<String>, dir: &Path, test_only: bool) {
        let rel = self.rel(path);
        let ast = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| syn::parse_file(&text).map_err(|e| e.to_string()))
        {
            Ok(ast) => ast,
            Err(e) => {
                self.problems.push(format!("{}: {e}", rel.display()));
                return;
            }
        };
        let index = self.files.len();
        self.modules.insert((krate.clone(), module.clone()), index);
        let items = ast.items.clone();
        self.files.push(SourceFile { rel, krate: krate.clone(), module: module.clone(), test_only, ast });
        self.declare_children(krate, index, &items, &module, dir, test_only);
    }

    /// Registers the modules declared among `items` (of module `module`, whose child files live in `dir`).
    fn declare_children(
        &mut self,
        krate: &CrateId,
        file: usize,
        items: &[Item],
        module: &[String],
        dir: &Path,
        test_only: bool,
    ) {
        for item in items {
            let Item::Mod(m) = item else {
                continue;
            };
            let name = m.ident.to_string();
            let child: Vec<String> = module.iter().cloned().chain([name.clone()]).collect();
            let child_test = test_only || is_test_only(&m.attrs);
            let explicit = path_attribute(&m.attrs);
            match &m.content {
                Some((_, inline)) => {
                    self.modules.insert((krate.clone(), child.clone()), file);
                    let child_dir = dir.join(explicit.unwrap_or_else(|| name.clone()));
                    self.declare_children(krate, file, inline, &child, &child_dir, child_test);
                }
                None => {
                    let candidates = match &explicit {
                        Some(p) => vec![dir.join(p)],
                        None => vec![dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")],
                    };
                    let Some(found) = candidates.into_iter().find(|c| c.is_file()) else {
                        self.problems.push(format!("module {} has no file under {}", child.join("::"), dir.display()));
                        continue;
                    };
                    // `x.rs` keeps its children in `x/`; `x/mod.rs` (or a `#[path]` file) in its own directory.
                    let child_dir = if found.file_name().is_some_and(|f| f == "mod.rs") || explicit.is_some() {
                        found.parent().map(Path::to_path_buf).unwrap_or_default()
                    } else {
                        dir.join(&name)
                    };
                    self.load_file(krate, &found, child, &child_dir, child_test);
                }
            }
        }
    }
}

/// The value of a `#[path = "…"]` attribute.
fn path_attribute(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Whether the attributes make an item exist only in test builds: `#[test]`, `#[tokio::test]`, or a `#[cfg]`
/// that requires `test` (`cfg(test)`, `cfg(all(test, …))`, `cfg(any(test, test))`).
pub fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        if path.segments.last().is_some_and(|s| s.ident == "test") && !path.is_ident("cfg") {
            return true;
        }
        match &a.meta {
            Meta::List(list) if list.path.is_ident("cfg") => {
                list.parse_args::<Meta>().is_ok_and(|predicate| requires_test(&predicate))
            }
            _ => false,
        }
    })
}

/// Whether a `cfg` predicate can only hold when `test` is set.
fn requires_test(predicate: &Meta) -> bool {
    match predicate {
        Meta::Path(p) => p.is_ident("test"),
        Meta::List(list) => {
            let Ok(args) = list.parse_args_with(syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated)
            else {
                return false;
            };
            if list.path.is_ident("all") {
                args.iter().any(requires_test)
            } else if list.path.is_ident("any") {
                !args.is_empty() && args.iter().all(requires_test)
            } else {
                false
            }
        }
        Meta::NameValue(_) => false,
    }
}
