//! The audited tree as cargo sees it: the packages below the folder, each
//! read from its crate roots into one crate model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use lanes_check::{Config, Model, Package, Root, SourceFile, display_path};

use crate::{Skipped, depth};

/// The files of one package (or, for `dir` without a `Cargo.toml`, of no
/// package), with the package's roots.
pub(crate) struct Group {
    pub(crate) dir: PathBuf,
    pub(crate) roots: Vec<Root>,
    pub(crate) files: Vec<PathBuf>,
}

/// Each file goes to the package of its nearest folder with a `Cargo.toml`
/// that declares a package, up to `root`.
pub(crate) fn group_by_package(root: &Path, files: &[PathBuf]) -> Vec<Group> {
    let mut packages: BTreeMap<PathBuf, Group> = BTreeMap::new();
    let mut manifests: BTreeMap<PathBuf, Option<Package>> = BTreeMap::new();
    for file in files {
        let package = file
            .ancestors()
            .skip(1)
            .take_while(|dir| dir.starts_with(root))
            .find(|dir| {
                manifests
                    .entry(dir.to_path_buf())
                    .or_insert_with(|| Package::read(dir).ok().filter(|p| !p.roots.is_empty()))
                    .is_some()
            });
        let dir = package.map_or_else(|| root.to_owned(), Path::to_path_buf);
        packages
            .entry(dir.clone())
            .or_insert_with(|| Group {
                roots: manifests
                    .get(&dir)
                    .and_then(Option::as_ref)
                    .map(|package| package.roots.clone())
                    .unwrap_or_default(),
                dir,
                files: Vec::new(),
            })
            .files
            .push(file.clone());
    }
    packages.into_values().collect()
}

/// The model of a package: its crates from their roots, then every file of
/// the group no root reached (a file kept out of the module tree, a
/// `build.rs`) as a crate of its own. Each file is parsed once; those that
/// do not parse are skipped, with the reason.
pub(crate) fn build(
    root: &Path,
    group: &Group,
    config: &Config,
) -> (Model, Vec<SourceFile>, Vec<Skipped>) {
    let mut opener = Opener {
        root,
        files: group.files.iter().map(PathBuf::as_path).collect(),
        parsed: HashMap::new(),
        skipped: Vec::new(),
    };
    let (model, sources) = Model::build(&group.roots, root, config, &mut |p| opener.open(p));
    let reached: HashSet<&Path> = model.files().collect();
    let orphans: Vec<Root> = group
        .files
        .iter()
        .filter(|f| !reached.contains(f.as_path()))
        .filter(|f| !opener.failed(f))
        .map(|f| Root {
            file: f.clone(),
            library: None,
        })
        .collect();
    drop(reached);
    if orphans.is_empty() {
        return (model, sources, opener.skipped);
    }
    drop(model);
    opener
        .parsed
        .extend(sources.into_iter().map(|s| (s.path, s.ast)));
    let mut roots = group.roots.clone();
    roots.extend(orphans);
    let (model, sources) = Model::build(&roots, root, config, &mut |p| opener.open(p));
    (model, sources, opener.skipped)
}

/// Opens the group's files for the model, parsing each at most once.
struct Opener<'a> {
    root: &'a Path,
    files: HashSet<&'a Path>,
    /// Parsed by an earlier build of the same group.
    parsed: HashMap<PathBuf, syn::File>,
    skipped: Vec<Skipped>,
}

impl Opener<'_> {
    fn open(&mut self, path: &Path) -> Option<syn::File> {
        if let Some(ast) = self.parsed.remove(path) {
            return Some(ast);
        }
        if !self.files.contains(path) || self.failed(path) {
            return None;
        }
        match parse(path) {
            Ok(ast) => Some(ast),
            Err(reason) => {
                let file = display_path(self.root, path);
                self.skipped.push(Skipped { file, reason });
                None
            }
        }
    }

    fn failed(&self, path: &Path) -> bool {
        let file = display_path(self.root, path);
        self.skipped.iter().any(|s| s.file == file)
    }
}

/// Reads, lexes, measures and parses one file; the reason it is skipped
/// otherwise.
fn parse(path: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    let at = |span: proc_macro2::Span| {
        let start = span.start();
        format!("{}:{}", start.line, start.column + 1)
    };
    let tokens: proc_macro2::TokenStream = without_shebang(&text)
        .parse()
        .map_err(|error: proc_macro2::LexError| format!("{}: {error}", at(error.span())))?;
    let depth = depth::nesting_of(tokens.clone());
    if depth > depth::LIMIT {
        return Err(format!(
            "nested too deeply to parse (depth {depth}, limit {})",
            depth::LIMIT
        ));
    }
    syn::parse2(tokens).map_err(|error| format!("{}: {error}", at(error.span())))
}

/// The text rustc lexes: without a byte-order mark or a `#!` line (which
/// `#![attr]` is not), as `syn::parse_file` does it. The shebang's line is
/// kept empty, so that line numbers stay the file's.
fn without_shebang(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with("#!") && !text.starts_with("#![") {
        let rest = text.find('\n').map_or("", |end| &text[end..]);
        std::borrow::Cow::Owned(rest.to_owned())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}
