//! Building the model from parsed files: the names of every module first,
//! then what each sync fn reaches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use syn::visit::Visit;
use syn::{Attribute, FnArg, ImplItem, Item, ReturnType, Signature, UseTree};

use super::load::{Root, children_dir, module_file_candidates};
use super::summary::{self, Raw};
use super::{FnInfo, Held, ItemPath, Model, Module, ModuleId, Name, Place, Region};
use crate::config::Config;
use crate::resolve::{Import, Resolved, imports};
use crate::rules::Origin;

/// A parsed file of the model, kept by the audit to check its async bodies.
pub struct SourceFile {
    /// As opened; the key of [`Model::place_at`].
    pub path: PathBuf,
    /// Relative to the folder the model was built for, with `/`.
    pub display: String,
    /// Its syntax tree.
    pub ast: syn::File,
}

impl std::fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .field("display", &self.display)
            .finish_non_exhaustive()
    }
}

/// An `impl` whose self type is resolved once every module's names are known.
struct PendingImpl {
    module: ModuleId,
    self_type: Vec<String>,
    trait_impl: bool,
    methods: Vec<(String, FnInfo)>,
    file: PathBuf,
    first: usize,
    last: usize,
}

/// Types of struct fields and statics, classified once names resolve.
struct PendingType {
    module: ModuleId,
    owner: ItemPath,
    /// The field's name; `None` for a static, whose owner is itself.
    field: Option<String>,
    paths: Vec<Vec<String>>,
}

struct Builder<'o> {
    model: Model,
    base: PathBuf,
    /// `lanes.toml`'s offloaders, to learn the crate's own.
    offload: Vec<String>,
    open: &'o mut dyn FnMut(&Path) -> Option<syn::File>,
    sources: Vec<(SourceFile, ModuleId)>,
    impls: Vec<PendingImpl>,
    types: Vec<PendingType>,
    /// Each `macro_rules!` and the names it calls, `name(..)` or `.name(..)`.
    macros: Vec<(String, Vec<String>)>,
}

impl Model {
    /// Builds the model of the crates whose roots are `roots`, reading each
    /// module file through `open` (which parses it, or says it cannot).
    /// Messages name files relative to `base`. Returns the parsed files too.
    pub fn build(
        roots: &[Root],
        base: &Path,
        config: &Config,
        open: &mut dyn FnMut(&Path) -> Option<syn::File>,
    ) -> (Model, Vec<SourceFile>) {
        let mut builder = Builder {
            model: Model::default(),
            base: base.to_owned(),
            offload: config.offload.clone(),
            open,
            sources: Vec::new(),
            impls: Vec::new(),
            types: Vec::new(),
            macros: Vec::new(),
        };
        for root in roots {
            builder.add_crate(root);
        }
        builder.resolve_pending();
        builder.model.index_methods();
        builder.find_offloading_macros();
        let Builder {
            mut model, sources, ..
        } = builder;
        let raw = summarize_all(&model, &sources, config);
        model.summaries = summary::fixed_point(&model, raw);
        (model, sources.into_iter().map(|(file, _)| file).collect())
    }
}

impl Builder<'_> {
    fn add_crate(&mut self, root: &Root) {
        let Some(ast) = (self.open)(&root.file) else {
            return;
        };
        let krate = self.model.roots.len();
        let module = self.add_module(krate, Vec::new(), None);
        self.model.roots.push(module);
        if let Some(name) = &root.library {
            self.model.libraries.insert(name.clone(), krate);
        }
        let dir = root.file.parent().map(Path::to_owned).unwrap_or_default();
        self.add_file(module, root.file.clone(), ast, dir);
    }

    fn add_module(
        &mut self,
        krate: usize,
        path: Vec<String>,
        parent: Option<ModuleId>,
    ) -> ModuleId {
        self.model.modules.push(Module {
            krate,
            path,
            parent,
            names: HashMap::new(),
            globs: Vec::new(),
        });
        self.model.modules.len() - 1
    }

    fn add_file(&mut self, module: ModuleId, path: PathBuf, ast: syn::File, dir: PathBuf) {
        // Known before its `mod` lines are followed, so that a `#[path]`
        // leading back to it is not read again.
        self.model.files.insert(path.clone(), (module, Vec::new()));
        let mut regions = Vec::new();
        self.fill(module, &ast.items, &path, &dir, true, &mut regions);
        let display = display_path(&self.base, &path);
        self.model.files.insert(path.clone(), (module, regions));
        self.sources
            .push((SourceFile { path, display, ast }, module));
    }

    /// Records the names `items` declare in `module`; `dir` is where its
    /// `mod x;` files are, and `top_level` says the items are the file's own
    /// rather than an inline module's.
    fn fill(
        &mut self,
        module: ModuleId,
        items: &[Item],
        file: &Path,
        dir: &Path,
        top_level: bool,
        regions: &mut Vec<Region>,
    ) {
        let here = self.model.module_path(module);
        for item in items {
            match item {
                Item::Use(item) => self.add_use(module, &item.tree),
                Item::ExternCrate(item) => {
                    let name = item.rename.as_ref().map_or(&item.ident, |(_, n)| n);
                    self.name(module, name, Name::Use(vec![item.ident.to_string()]));
                }
                Item::Fn(item) => {
                    let path = here.child(&item.sig.ident.to_string());
                    let info = self.fn_info(file, &item.attrs, &item.sig, &item.block);
                    self.model.fns.insert(path.clone(), info);
                    self.name(module, &item.sig.ident, Name::Item(path));
                }
                Item::Struct(item) => {
                    let owner = here.child(&item.ident.to_string());
                    for field in &item.fields {
                        if let Some(name) = &field.ident {
                            self.types.push(PendingType {
                                module,
                                owner: owner.clone(),
                                field: Some(name.to_string()),
                                paths: type_paths(&field.ty),
                            });
                        }
                    }
                    self.name(module, &item.ident, Name::Item(owner));
                }
                Item::Static(item) => {
                    let owner = here.child(&item.ident.to_string());
                    self.types.push(PendingType {
                        module,
                        owner: owner.clone(),
                        field: None,
                        paths: type_paths(&item.ty),
                    });
                    self.name(module, &item.ident, Name::Item(owner));
                }
                Item::Type(item) => match &*item.ty {
                    syn::Type::Path(target) if target.qself.is_none() => {
                        let target = crate::resolve::written(&target.path);
                        self.name(module, &item.ident, Name::Alias(target));
                    }
                    _ => self.name(
                        module,
                        &item.ident,
                        Name::Item(here.child(&item.ident.to_string())),
                    ),
                },
                Item::Enum(item) => self.item(module, &here, &item.ident),
                Item::Union(item) => self.item(module, &here, &item.ident),
                Item::Trait(item) => self.item(module, &here, &item.ident),
                Item::Const(item) => self.item(module, &here, &item.ident),
                Item::Mod(item) => self.add_mod(module, item, file, dir, top_level, regions),
                Item::Macro(item) if item.mac.path.is_ident("macro_rules") => {
                    if let Some(name) = &item.ident {
                        self.macros
                            .push((name.to_string(), called_names(item.mac.tokens.clone())));
                    }
                }
                Item::Impl(item) => self.add_impl(module, item, file),
                _ => {}
            }
        }
    }

    fn item(&mut self, module: ModuleId, here: &ItemPath, ident: &syn::Ident) {
        self.name(module, ident, Name::Item(here.child(&ident.to_string())));
    }

    fn name(&mut self, module: ModuleId, ident: &syn::Ident, name: Name) {
        // A macro can shadow any name; the first declaration is the one kept.
        self.model.modules[module]
            .names
            .entry(ident.to_string())
            .or_insert(name);
    }

    fn add_mod(
        &mut self,
        module: ModuleId,
        item: &syn::ItemMod,
        file: &Path,
        dir: &Path,
        top_level: bool,
        regions: &mut Vec<Region>,
    ) {
        let krate = self.model.modules[module].krate;
        let mut path = self.model.modules[module].path.clone();
        path.push(item.ident.to_string());
        let child = self.add_module(krate, path, Some(module));
        self.name(module, &item.ident, Name::Module(child));
        let attr_path = path_attribute(&item.attrs);
        match &item.content {
            Some((brace, items)) => {
                regions.push(Region {
                    first: item.mod_token.span.start().line,
                    last: brace.span.close().end().line,
                    place: Place {
                        module: child,
                        self_type: None,
                    },
                });
                let inner = dir.join(attr_path.as_deref().unwrap_or(&item.ident.to_string()));
                self.fill(child, items, file, &inner, false, regions);
            }
            None => {
                let name = item.ident.to_string();
                let candidates =
                    module_file_candidates(dir, file, top_level, &name, attr_path.as_deref());
                for found in candidates {
                    if self.model.files.contains_key(&found) {
                        return;
                    }
                    if let Some(ast) = (self.open)(&found) {
                        let child_dir = children_dir(&found, attr_path.is_some());
                        self.add_file(child, found, ast, child_dir);
                        return;
                    }
                }
            }
        }
    }

    fn add_impl(&mut self, module: ModuleId, item: &syn::ItemImpl, file: &Path) {
        let syn::Type::Path(self_type) = &*item.self_ty else {
            return;
        };
        let methods = item
            .items
            .iter()
            .filter_map(|i| match i {
                ImplItem::Fn(f) => Some((
                    f.sig.ident.to_string(),
                    self.fn_info(file, &f.attrs, &f.sig, &f.block),
                )),
                _ => None,
            })
            .collect();
        self.impls.push(PendingImpl {
            module,
            self_type: crate::resolve::written(&self_type.path),
            trait_impl: item.trait_.is_some(),
            methods,
            file: file.to_owned(),
            first: item.impl_token.span.start().line,
            last: item.brace_token.span.close().end().line,
        });
    }

    fn fn_info(
        &self,
        file: &Path,
        attrs: &[Attribute],
        sig: &Signature,
        body: &syn::Block,
    ) -> FnInfo {
        let takes_self = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
        FnInfo {
            file: display_path(&self.base, file),
            returns_future: sig.asyncness.is_some()
                || has_lane_attribute(attrs)
                || returns_a_future(&sig.output),
            arity: sig.inputs.len() - usize::from(takes_self),
            offloads: offloaded_closures(sig, body, &self.offload),
        }
    }

    /// `use a::{b, c as d, e::*};` into names and globs.
    fn add_use(&mut self, module: ModuleId, tree: &UseTree) {
        let module = &mut self.model.modules[module];
        for import in imports(tree) {
            match import {
                Import::Name(name, target) => {
                    module.names.entry(name).or_insert(Name::Use(target));
                }
                Import::Glob(prefix) => module.globs.push(prefix),
            }
        }
    }

    /// A macro that calls an offloader (`spawn_blocking(..)`) or one of
    /// the crate's offloading fns (`$conn.run(..)`) runs its input there.
    fn find_offloading_macros(&mut self) {
        let crate_offloaders: Vec<&str> = self
            .model
            .fns
            .iter()
            .filter(|(_, info)| !info.offloads.is_empty())
            .map(|(path, _)| path.name())
            .collect();
        let offloading: Vec<String> = self
            .macros
            .iter()
            .filter(|(_, called)| {
                called.iter().any(|name| {
                    crate::flow::is_offloader(std::slice::from_ref(name), &self.offload)
                        || crate::flow::is_offloading_method(name, &self.offload)
                        || crate_offloaders.contains(&name.as_str())
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        self.model.offloading_macros.extend(offloading);
    }

    /// Impls and types, now that every module's names are known.
    fn resolve_pending(&mut self) {
        for pending in std::mem::take(&mut self.impls) {
            let place = Place {
                module: pending.module,
                self_type: None,
            };
            let Resolved::Local(owner) = self.model.resolve(&place, &pending.self_type) else {
                continue;
            };
            for (name, info) in pending.methods {
                let path = owner.child(&name);
                if !pending.trait_impl {
                    self.model
                        .methods
                        .entry(name)
                        .or_default()
                        .push(path.clone());
                }
                self.model.fns.entry(path).or_insert(info);
            }
            if let Some((_, regions)) = self.model.files.get_mut(&pending.file) {
                regions.push(Region {
                    first: pending.first,
                    last: pending.last,
                    place: Place {
                        module: pending.module,
                        self_type: Some(owner),
                    },
                });
            }
        }
        for pending in std::mem::take(&mut self.types) {
            let place = Place {
                module: pending.module,
                self_type: None,
            };
            let Some(held) = classify(&self.model, &place, &pending.paths) else {
                continue;
            };
            match pending.field {
                Some(field) => {
                    self.model
                        .fields
                        .entry(pending.owner)
                        .or_default()
                        .insert(field, held);
                }
                None => {
                    self.model.statics.insert(pending.owner, held);
                }
            }
        }
    }
}

/// Every sync fn of the model, walked for what it calls and what blocks.
fn summarize_all(
    model: &Model,
    sources: &[(SourceFile, ModuleId)],
    config: &Config,
) -> HashMap<ItemPath, Raw> {
    struct Fns<'m> {
        model: &'m Model,
        config: &'m Config,
        place: Place,
        out: HashMap<ItemPath, Raw>,
    }
    impl Fns<'_> {
        fn body(&mut self, sig: &Signature, block: &syn::Block) {
            let path = self.model.defined_at(&self.place, &sig.ident.to_string());
            if self.model.fns.get(&path).is_some_and(|f| !f.returns_future) {
                let raw = crate::visit::summarize(block, sig, self.model, &self.place, self.config);
                self.out.entry(path).or_insert(raw);
            }
        }
    }
    impl<'ast> Visit<'ast> for Fns<'_> {
        fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
            self.body(&item.sig, &item.block);
        }
        fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
            let Some(Name::Module(child)) = self.model.modules[self.place.module]
                .names
                .get(&item.ident.to_string())
                .cloned()
            else {
                return;
            };
            let outer = std::mem::replace(
                &mut self.place,
                Place {
                    module: child,
                    self_type: None,
                },
            );
            syn::visit::visit_item_mod(self, item);
            self.place = outer;
        }
        fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
            let syn::Type::Path(ty) = &*item.self_ty else {
                return;
            };
            let Resolved::Local(owner) = self
                .model
                .resolve(&self.place, &crate::resolve::written(&ty.path))
            else {
                return;
            };
            let outer = self.place.self_type.replace(owner);
            for item in &item.items {
                if let ImplItem::Fn(f) = item {
                    self.body(&f.sig, &f.block);
                }
            }
            self.place.self_type = outer;
        }
        // Items nested in fn bodies are not reachable by path.
        fn visit_block(&mut self, _: &'ast syn::Block) {}
    }
    let mut fns = Fns {
        model,
        config,
        place: Place {
            module: 0,
            self_type: None,
        },
        out: HashMap::new(),
    };
    for (file, module) in sources {
        fns.place = Place {
            module: *module,
            self_type: None,
        };
        fns.visit_file(&file.ast);
    }
    fns.out
}

/// The positions (besides `self`) of the closure arguments `body` hands to
/// an offloader, directly or called inside an offloaded closure.
fn offloaded_closures(sig: &Signature, body: &syn::Block, offload: &[String]) -> Vec<usize> {
    let closures: Vec<(usize, String)> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .filter_map(|(i, typed)| match &*typed.pat {
            syn::Pat::Ident(name) if is_a_closure_type(sig, &typed.ty) => {
                Some((i, name.ident.to_string()))
            }
            _ => None,
        })
        .collect();
    // Most fns take no closure: their bodies need no reading here.
    if closures.is_empty() {
        return Vec::new();
    }
    let flows = crate::flow::flows(body, offload);
    closures
        .into_iter()
        .filter(|(_, name)| flows.offloaded.contains(name) || flows.used_offloaded.contains(name))
        .map(|(i, _)| i)
        .collect()
}

/// `impl FnOnce(..)`, `Box<dyn Fn(..)>`, or a type parameter bounded by a
/// `Fn` trait.
fn is_a_closure_type(sig: &Signature, ty: &syn::Type) -> bool {
    fn names_fn_trait(
        bounds: &syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>,
    ) -> bool {
        bounds.iter().any(|b| match b {
            syn::TypeParamBound::Trait(t) => t
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Fn" || s.ident == "FnOnce" || s.ident == "FnMut"),
            _ => false,
        })
    }
    struct Closures<'s> {
        sig: &'s Signature,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Closures<'_> {
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.found |= names_fn_trait(&t.bounds);
        }
        fn visit_type_trait_object(&mut self, t: &'ast syn::TypeTraitObject) {
            self.found |= names_fn_trait(&t.bounds);
        }
        fn visit_type_path(&mut self, t: &'ast syn::TypePath) {
            if let Some(ident) = t.path.get_ident() {
                let generics = &self.sig.generics;
                let in_params = generics
                    .type_params()
                    .any(|p| p.ident == *ident && names_fn_trait(&p.bounds));
                let in_where = generics.where_clause.as_ref().is_some_and(|w| {
                    w.predicates.iter().any(|p| match p {
                        syn::WherePredicate::Type(pt) => {
                            matches!(&pt.bounded_ty, syn::Type::Path(b) if b.path.is_ident(ident))
                                && names_fn_trait(&pt.bounds)
                        }
                        _ => false,
                    })
                });
                self.found |= in_params || in_where;
            }
            syn::visit::visit_type_path(self, t);
        }
    }
    let mut closures = Closures { sig, found: false };
    closures.visit_type(ty);
    closures.found
}

/// The names a macro's tokens call: an identifier right before a
/// parenthesised group.
fn called_names(tokens: proc_macro2::TokenStream) -> Vec<String> {
    let mut names = Vec::new();
    let trees: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            proc_macro2::TokenTree::Ident(ident) => {
                if let Some(proc_macro2::TokenTree::Group(g)) = trees.get(i + 1)
                    && g.delimiter() == proc_macro2::Delimiter::Parenthesis
                {
                    names.push(ident.to_string());
                }
            }
            proc_macro2::TokenTree::Group(group) => names.extend(called_names(group.stream())),
            _ => {}
        }
    }
    names
}

/// What a value of a type made of `paths` holds, by the first path in it
/// that names a lock or a std handle: `Arc<Mutex<T>>` holds a std lock.
pub(crate) fn classify(model: &Model, place: &Place, paths: &[Vec<String>]) -> Option<Held> {
    paths.iter().find_map(|path| {
        let resolved = model.resolve(place, path);
        held_by(&resolved)
    })
}

/// The lock or handle a resolved type path names.
pub(crate) fn held_by(resolved: &Resolved) -> Option<Held> {
    let Resolved::External(path) = resolved else {
        return None;
    };
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let held = match path.as_slice() {
        ["std", "sync", "Mutex" | "RwLock"] => Held::StdLock,
        [
            "parking_lot",
            "Mutex" | "RwLock" | "ReentrantMutex" | "FairMutex",
        ] => Held::ParkingLotLock,
        ["tokio", "sync", "Mutex" | "RwLock"]
        | ["futures" | "futures_util", "lock", "Mutex"]
        | ["async_std", "sync", "Mutex" | "RwLock"] => Held::AsyncLock,
        ["std", "fs", "File"] => Held::Std(Origin::File),
        ["std", "net", "TcpListener"] => Held::Std(Origin::Listener),
        ["std", "net", "TcpStream"] => Held::Std(Origin::Socket),
        ["std", "thread", "JoinHandle"] => Held::Std(Origin::Thread),
        ["std", "sync", "mpsc", "Receiver"] => Held::Std(Origin::Receiver),
        _ => return None,
    };
    Some(held)
}

/// Every path named in a type, outermost first: `Arc<Mutex<T>>` gives
/// `Arc`, `Mutex`, `T`.
pub(crate) fn type_paths(ty: &syn::Type) -> Vec<Vec<String>> {
    struct Paths(Vec<Vec<String>>);
    impl<'ast> Visit<'ast> for Paths {
        fn visit_type_path(&mut self, ty: &'ast syn::TypePath) {
            if ty.qself.is_none() {
                self.0.push(crate::resolve::written(&ty.path));
            }
            syn::visit::visit_type_path(self, ty);
        }
    }
    let mut paths = Paths(Vec::new());
    paths.visit_type(ty);
    paths.0
}

/// `#[io_bound]`, `#[blocking]`, `#[cpu_bound]` or `#[background]`, however
/// prefixed: the fn is async once expanded.
pub(crate) fn has_lane_attribute(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().segments.last().is_some_and(|s| {
            ["io_bound", "blocking", "cpu_bound", "background"]
                .iter()
                .any(|lane| s.ident == lane)
        })
    })
}

/// `-> impl Future<..>`, `-> BoxFuture<..>`, `-> Pin<Box<dyn Future<..>>>`:
/// the call only builds the future.
fn returns_a_future(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    struct Future(bool);
    impl<'ast> Visit<'ast> for Future {
        fn visit_ident(&mut self, ident: &'ast syn::Ident) {
            let name = ident.to_string();
            self.0 |= name == "Future" || name.ends_with("Future");
        }
    }
    let mut found = Future(false);
    found.visit_type(ty);
    found.0
}

/// The value of `#[path = ".."]`.
fn path_attribute(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| {
        let syn::Meta::NameValue(nv) = &attr.meta else {
            return None;
        };
        if !nv.path.is_ident("path") {
            return None;
        }
        match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        }
    })
}

/// `path` relative to `base`, with `/` separators, as messages and reports
/// name files.
pub fn display_path(base: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(base).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
