//! The crate model: every module's names, every fn of the crate, and what
//! each sync fn reaches that blocks. Built once from the crate's files and
//! kept as plain data (no syntax trees, no spans), so that the macros can
//! cache it across calls and the audit can share it across a crate's files.

mod build;
mod cache;
mod load;
pub(crate) mod summary;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::resolve::{KNOWN_CRATES, Resolved};
use crate::rules::Kind;

pub use build::{SourceFile, display_path};
pub(crate) use build::{classify, held_by, type_paths};
pub use cache::for_macro;
pub use load::{LoadError, Package, Root};
pub(crate) use summary::Chain;

/// An item of one of the model's crates: the crate and the path below its
/// root (`["db", "User", "check_password"]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ItemPath {
    pub(crate) krate: usize,
    pub(crate) segments: Vec<String>,
}

impl ItemPath {
    fn child(&self, name: &str) -> ItemPath {
        let mut segments = self.segments.clone();
        segments.push(name.to_owned());
        ItemPath {
            krate: self.krate,
            segments,
        }
    }

    /// `db::User::check_password`, for messages.
    pub(crate) fn display(&self) -> String {
        self.segments.join("::")
    }

    /// The path from the second-to-last segment: `User::check_password`,
    /// `crypto::verify`, or the name alone at the crate root.
    pub(crate) fn short(&self) -> String {
        let n = self.segments.len();
        self.segments[n.saturating_sub(2)..].join("::")
    }

    /// The name [`Model::item_named`] and [`Model::fn_defined`] give it.
    fn key(&self) -> String {
        format!("{}:{}", self.krate, self.display())
    }

    /// The last segment.
    pub(crate) fn name(&self) -> &str {
        self.segments.last().map_or("", String::as_str)
    }
}

pub(crate) type ModuleId = usize;

/// What a name in a module stands for.
#[derive(Clone, Debug)]
enum Name {
    Module(ModuleId),
    /// A fn, type, trait, const or static of the crate.
    Item(ItemPath),
    /// `use target as name;`: resolved from the module that wrote it.
    Use(Vec<String>),
    /// `type Name = target;`
    Alias(Vec<String>),
}

#[derive(Debug)]
struct Module {
    krate: usize,
    path: Vec<String>,
    parent: Option<ModuleId>,
    names: HashMap<String, Name>,
    globs: Vec<Vec<String>>,
}

/// What a value holds, for the rules that need its type: which lock a
/// `.lock()` takes, which std handle a read blocks on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// `std::sync::Mutex` or `RwLock`: `.lock()` returns a `LockResult`.
    StdLock,
    /// `parking_lot`'s locks: `.lock()` returns the guard itself.
    ParkingLotLock,
    /// tokio's, futures' or async-std's locks: `.lock()` is a future.
    AsyncLock,
    /// A std handle whose methods block.
    Std(crate::rules::Origin),
}

/// A fn of the crate.
#[derive(Clone, Debug)]
pub(crate) struct FnInfo {
    /// Relative to the crate's package, for messages.
    pub(crate) file: String,
    /// Calling it does not run its body: `async fn`, a fn with a lane
    /// attribute, a fn that returns a future.
    pub(crate) returns_future: bool,
    /// Arguments besides `self`.
    pub(crate) arity: usize,
    /// The arguments (by position, besides `self`) that are closures the
    /// fn hands to an offloader: `run(&self, f: F)` that calls
    /// `block_in_place(move || f(conn))` offloads its closure.
    pub(crate) offloads: Vec<usize>,
}

/// Where a body sits in the model: its module and, inside an `impl`, the
/// type `Self` names.
#[derive(Clone, Debug)]
pub struct Place {
    pub(crate) module: ModuleId,
    pub(crate) self_type: Option<ItemPath>,
}

/// A span of lines of one file that belongs to one module or impl.
#[derive(Debug)]
struct Region {
    first: usize,
    last: usize,
    place: Place,
}

/// The crate model; see the module docs.
#[derive(Debug, Default)]
pub struct Model {
    modules: Vec<Module>,
    /// Crate roots, by crate.
    roots: Vec<ModuleId>,
    /// Other crates of the model by the name code uses for them: a
    /// package's library, seen from its binaries.
    libraries: HashMap<String, usize>,
    /// Each file's top module and the inline modules and impls inside it,
    /// innermost last.
    files: HashMap<PathBuf, (ModuleId, Vec<Region>)>,
    fns: HashMap<ItemPath, FnInfo>,
    /// Inherent methods by name, while the model is built.
    methods: HashMap<String, Vec<ItemPath>>,
    /// The crate's one inherent method of each name and arity, for calls
    /// on a receiver of unknown type; `None` when several share it.
    method_by_signature: HashMap<(String, usize), Option<ItemPath>>,
    /// The arguments the crate's methods of each name and arity offload.
    offloading_methods: HashMap<(String, usize), Vec<usize>>,
    /// The crate's `macro_rules!` that hand their input to an offloader.
    offloading_macros: std::collections::HashSet<String>,
    /// Fields of the crate's structs, for `self.field.lock()`.
    fields: HashMap<ItemPath, HashMap<String, Held>>,
    statics: HashMap<ItemPath, Held>,
    summaries: HashMap<ItemPath, summary::Summary>,
}

/// Counts the steps of one resolution.
type Steps = Cell<usize>;

/// Enough for a path through a dozen re-exports and globs.
const MAX_STEPS: usize = 64;

/// Methods so common on std, tokio and futures types that a call
/// `.name(..)` on a receiver of unknown type is never taken for the crate's
/// own method of that name.
const COMMON_METHODS: &[&str] = &[
    "as_ref",
    "borrow",
    "build",
    "call",
    "clone",
    "close",
    "collect",
    "connect",
    "contains",
    "default",
    "drop",
    "execute",
    "extend",
    "fetch",
    "finish",
    "flush",
    "from",
    "get",
    "get_mut",
    "handle",
    "insert",
    "into",
    "is_empty",
    "iter",
    "join",
    "len",
    "load",
    "lock",
    "map",
    "new",
    "next",
    "open",
    "parse",
    "poll",
    "push",
    "query",
    "read",
    "recv",
    "remove",
    "reset",
    "run",
    "send",
    "set",
    "shutdown",
    "spawn",
    "start",
    "stop",
    "store",
    "take",
    "to_string",
    "try_from",
    "try_into",
    "unwrap",
    "update",
    "wait",
    "write",
];

impl Model {
    /// The place of the code at `line` of `file`: the innermost module or
    /// impl around it. `None` when the file is not part of the model.
    pub fn place_at(&self, file: &Path, line: usize) -> Option<Place> {
        let (module, regions) = self.files.get(file)?;
        let inner = regions
            .iter()
            .filter(|r| r.first <= line && line <= r.last)
            .max_by_key(|r| r.first);
        Some(inner.map_or(
            Place {
                module: *module,
                self_type: None,
            },
            |r| r.place.clone(),
        ))
    }

    /// A name for the crate's item that `written` (`handlers::users::get`)
    /// names at `line` of `file`, the same wherever it is written from, to
    /// match a route's handler with its fn. `None` for another crate's item.
    pub fn item_named(&self, file: &Path, line: usize, written: &str) -> Option<String> {
        let place = self.place_at(file, line)?;
        let segments: Vec<String> = written.split("::").map(str::to_owned).collect();
        match self.resolve(&place, &segments) {
            Resolved::Local(path) => Some(path.key()),
            _ => None,
        }
    }

    /// The name [`Model::item_named`] gives the fn `name` defined at
    /// `line` of `file` (a method of the impl there, or a fn of the module).
    pub fn fn_defined(&self, file: &Path, line: usize, name: &str) -> Option<String> {
        let place = self.place_at(file, line)?;
        Some(self.defined_at(&place, name).key())
    }

    /// The item `name` defined at `place`: a method of the impl there, or
    /// an item of the module.
    pub(crate) fn defined_at(&self, place: &Place, name: &str) -> ItemPath {
        match &place.self_type {
            Some(owner) => owner.child(name),
            None => self.module_path(place.module).child(name),
        }
    }

    /// The path of a module itself.
    pub(crate) fn module_path(&self, module: ModuleId) -> ItemPath {
        let m = &self.modules[module];
        ItemPath {
            krate: m.krate,
            segments: m.path.clone(),
        }
    }

    /// The files of the model.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    pub(crate) fn fn_info(&self, path: &ItemPath) -> Option<&FnInfo> {
        self.fns.get(path)
    }

    pub(crate) fn summary(&self, path: &ItemPath, kind: Kind) -> Option<&Chain> {
        self.summaries.get(path).and_then(|s| s.get(kind))
    }

    /// What `segments`, written at `place`, names.
    pub(crate) fn resolve(&self, place: &Place, segments: &[String]) -> Resolved {
        let steps = Cell::new(0);
        self.resolve_from(place.module, place.self_type.as_ref(), segments, &steps)
            .unwrap_or_else(|| Resolved::AsWritten(segments.to_vec()))
    }

    /// What `.name(..)` with `args` arguments calls when its receiver's type
    /// is unknown: the crate's one inherent method of that name and arity.
    pub(crate) fn method_by_name(&self, name: &str, args: usize) -> Option<&ItemPath> {
        if COMMON_METHODS.contains(&name) {
            return None;
        }
        self.method_by_signature
            .get(&(name.to_owned(), args))?
            .as_ref()
    }

    /// Indexes the methods by name and arity, once every fn is known.
    fn index_methods(&mut self) {
        for (name, paths) in std::mem::take(&mut self.methods) {
            for path in &paths {
                let Some(info) = self.fns.get(path) else {
                    continue;
                };
                let key = (name.clone(), info.arity);
                self.method_by_signature
                    .entry(key.clone())
                    .and_modify(|only| *only = None)
                    .or_insert_with(|| Some(path.clone()));
                if !info.offloads.is_empty() {
                    self.offloading_methods
                        .entry(key)
                        .or_insert_with(|| info.offloads.clone());
                }
            }
        }
    }

    /// The module (or one around it) names `krate` in a `use` line.
    pub(crate) fn uses_crate(&self, place: &Place, krate: &str) -> bool {
        let mut at = Some(place.module);
        while let Some(module) = at {
            let m = &self.modules[module];
            let named = m.names.values().any(|name| {
                matches!(name, Name::Use(target) if target.first().is_some_and(|s| s == krate))
            }) || m.globs.iter().any(|g| g.first().is_some_and(|s| s == krate));
            if named {
                return true;
            }
            at = m.parent;
        }
        false
    }

    /// The arguments a crate method named `name` with `args` arguments
    /// offloads, whatever its receiver: learned from the crate's own
    /// offloading methods (a database handle's `.run(|conn| ..)`).
    pub(crate) fn offloading_method(&self, name: &str, args: usize) -> Option<&[usize]> {
        self.offloading_methods
            .get(&(name.to_owned(), args))
            .map(Vec::as_slice)
    }

    /// A `macro_rules!` of the crate named `name` hands its input to an
    /// offloader, so its body is not inline code.
    pub(crate) fn is_offloading_macro(&self, name: &str) -> bool {
        self.offloading_macros.contains(name)
    }

    pub(crate) fn field(&self, owner: &ItemPath, field: &str) -> Option<Held> {
        self.fields.get(owner)?.get(field).copied()
    }

    pub(crate) fn static_held(&self, path: &ItemPath) -> Option<Held> {
        self.statics.get(path).copied()
    }

    /// `None` when nothing in scope explains the path.
    fn resolve_from(
        &self,
        module: ModuleId,
        self_type: Option<&ItemPath>,
        segments: &[String],
        steps: &Steps,
    ) -> Option<Resolved> {
        // Re-exports can loop (`use a::b` in `b`'s module) and globs branch
        // (every `use ..::*` of every module on the way); past this many
        // steps a path is taken as written.
        steps.set(steps.get() + 1);
        if steps.get() > MAX_STEPS {
            return None;
        }
        let (first, rest) = segments.split_first()?;
        let krate = self.modules[module].krate;
        match first.as_str() {
            "" => Some(Resolved::External(rest.to_vec())),
            "crate" => self.walk(self.roots[krate], rest, steps),
            "self" => self.walk(module, rest, steps),
            "super" => {
                let mut at = self.modules[module].parent?;
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    at = self.modules[at].parent?;
                    rest = &rest[1..];
                }
                self.walk(at, rest, steps)
            }
            "Self" => {
                let mut path = self_type?.clone();
                path.segments.extend(rest.iter().cloned());
                Some(Resolved::Local(path))
            }
            _ => {
                if let Some(resolved) = self.lookup(module, first, rest, steps) {
                    return Some(resolved);
                }
                if let Some(&lib) = self.libraries.get(first) {
                    return self.walk(self.roots[lib], rest, steps);
                }
                if KNOWN_CRATES.contains(&first.as_str()) && !rest.is_empty() {
                    return Some(Resolved::External(segments.to_vec()));
                }
                self.through_globs(module, first, rest, steps)
            }
        }
    }

    /// `name` (followed by `rest`) among the names of `module`.
    fn lookup(
        &self,
        module: ModuleId,
        name: &str,
        rest: &[String],
        steps: &Steps,
    ) -> Option<Resolved> {
        match self.modules[module].names.get(name)? {
            Name::Module(child) => self.walk(*child, rest, steps),
            Name::Item(path) => {
                let mut path = path.clone();
                path.segments.extend(rest.iter().cloned());
                Some(Resolved::Local(path))
            }
            // `use glob::glob;`: the path's `glob` is the crate, not the
            // name this `use` defines; `glob::Pattern` is the crate's too.
            Name::Use(target) if target.len() > 1 && target[0] == name => {
                let full = if rest.is_empty() {
                    target.clone()
                } else {
                    std::iter::once(name.to_owned())
                        .chain(rest.iter().cloned())
                        .collect()
                };
                Some(Resolved::External(full))
            }
            Name::Use(target) | Name::Alias(target) => {
                let mut full = target.clone();
                full.extend(rest.iter().cloned());
                Some(self.resolve_use(module, &full, steps))
            }
        }
    }

    /// A `use` path: its first segment is a name of the module or a crate.
    fn resolve_use(&self, module: ModuleId, segments: &[String], steps: &Steps) -> Resolved {
        self.resolve_from(module, None, segments, steps)
            .unwrap_or_else(|| match segments.first().map(String::as_str) {
                Some("crate" | "self" | "super") | None => Resolved::AsWritten(segments.to_vec()),
                Some(_) => Resolved::External(segments.to_vec()),
            })
    }

    /// `name` brought in by a `use ..::*` of the module: from the crate's
    /// own module when it has the name, or from the one external glob.
    fn through_globs(
        &self,
        module: ModuleId,
        name: &str,
        rest: &[String],
        steps: &Steps,
    ) -> Option<Resolved> {
        let mut external = Vec::new();
        for glob in &self.modules[module].globs {
            match self.resolve_from(module, None, glob, steps) {
                Some(Resolved::Local(path)) => {
                    if let Some(target) = self.module_at(&path)
                        && let Some(found) = self.lookup(target, name, rest, steps)
                    {
                        return Some(found);
                    }
                }
                Some(Resolved::External(path)) => external.push(path),
                _ => {
                    if !glob.first().is_some_and(|s| s == "crate" || s == "super") {
                        external.push(glob.clone());
                    }
                }
            }
        }
        // With two external globs the name could come from either.
        match external.as_slice() {
            [only] => {
                let mut path = only.clone();
                path.push(name.to_owned());
                path.extend(rest.iter().cloned());
                Some(Resolved::External(path))
            }
            _ => None,
        }
    }

    /// Follows `rest` down from `module`.
    fn walk(&self, module: ModuleId, rest: &[String], steps: &Steps) -> Option<Resolved> {
        let Some((first, tail)) = rest.split_first() else {
            return Some(Resolved::Local(self.module_path(module)));
        };
        match self.lookup(module, first, tail, steps) {
            Some(found) => Some(found),
            None => self.through_globs(module, first, tail, steps),
        }
    }

    /// The module an item path names, if it is one.
    fn module_at(&self, path: &ItemPath) -> Option<ModuleId> {
        let mut at = self.roots[path.krate];
        for segment in &path.segments {
            match self.modules[at].names.get(segment)? {
                Name::Module(child) => at = *child,
                _ => return None,
            }
        }
        Some(at)
    }
}
