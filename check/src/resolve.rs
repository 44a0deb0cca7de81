//! What a path written in a body names, once `use` lines, aliases, local
//! modules and re-exports are followed.

use crate::model::ItemPath;

/// A path as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// An item of a crate of the model: `db::User::check_password`.
    Local(ItemPath),
    /// An item of another crate, reached through the file's names:
    /// `std::fs::read` for `fs::read` after `use std::fs;`. Rules match it
    /// exactly.
    External(Vec<String>),
    /// Nothing in scope explains the path (no crate model, a glob, a name a
    /// macro made): the rules match it as written, by suffix.
    AsWritten(Vec<String>),
}

impl Resolved {
    /// The segments, whatever their certainty.
    pub(crate) fn segments(&self) -> &[String] {
        match self {
            Resolved::Local(p) => &p.segments,
            Resolved::External(p) | Resolved::AsWritten(p) => p,
        }
    }

    /// The path names something of tokio, futures or async-std other than
    /// their executors' `block_on`: never a blocking std call.
    pub(crate) fn is_async_runtime(&self) -> bool {
        match self {
            Resolved::External(p) | Resolved::AsWritten(p) => {
                p.first()
                    .is_some_and(|root| ASYNC_CRATES.contains(&root.as_str()))
                    && !p.last().is_some_and(|name| name.starts_with("block_on"))
            }
            Resolved::Local(_) => false,
        }
    }
}

/// Crates whose items are async by design.
const ASYNC_CRATES: &[&str] = &["tokio", "futures", "futures_util", "async_std", "smol"];

/// Crates named by the rules (and the standard library): a path starting
/// with one of these that no `use` explains is taken to be that crate's.
pub(crate) const KNOWN_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "tokio",
    "futures",
    "futures_util",
    "async_std",
    "smol",
    "bcrypt",
    "argon2",
    "scrypt",
    "pbkdf2",
    "password_hash",
    "reqwest",
    "ureq",
    "fs_err",
    "rusqlite",
    "postgres",
    "redis",
    "diesel",
    "tar",
    "zip",
    "parking_lot",
    "rayon",
    "tokio_rayon",
    "blocking",
    "actix_web",
    "lanes",
];

/// `segments` as written in a body, split from a `syn::Path`.
pub(crate) fn written(path: &syn::Path) -> Vec<String> {
    let mut segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    if path.leading_colon.is_some() {
        segments.insert(0, String::new());
    }
    segments
}

/// What a `use` item brings into scope.
pub(crate) enum Import {
    /// `use a::b as c;`: the name `c` for the path `a::b`.
    Name(String, Vec<String>),
    /// `use a::*;`: every name of `a`.
    Glob(Vec<String>),
}

/// The names and globs of a `use` tree: `use a::{self, b, c as d, e::*}`.
/// `use a as _;` names nothing.
pub(crate) fn imports(tree: &syn::UseTree) -> Vec<Import> {
    fn walk(tree: &syn::UseTree, mut prefix: Vec<String>, out: &mut Vec<Import>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(&p.tree, prefix, out);
            }
            syn::UseTree::Name(n) if n.ident == "self" => {
                if let Some(last) = prefix.last().cloned() {
                    out.push(Import::Name(last, prefix));
                }
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                out.push(Import::Name(n.ident.to_string(), prefix));
            }
            syn::UseTree::Rename(r) => {
                if r.ident != "self" {
                    prefix.push(r.ident.to_string());
                }
                if r.rename != "_" {
                    out.push(Import::Name(r.rename.to_string(), prefix));
                }
            }
            syn::UseTree::Glob(_) => out.push(Import::Glob(prefix)),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    walk(tree, prefix.clone(), out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, Vec::new(), &mut out);
    out
}
