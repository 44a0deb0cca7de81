//! Where a crate's files are: its roots from `Cargo.toml` (or cargo's
//! defaults), and the file of each `mod x;`, as rustc finds them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A crate root: `src/lib.rs`, `src/main.rs`, a `[[bin]]`'s path, ...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// The root file.
    pub file: PathBuf,
    /// The name the package's other crates use for this one: set for the
    /// library, so that `my_crate::db::query` from a binary resolves.
    pub library: Option<String>,
}

/// A cargo package: its folder and its crate roots, the library first.
#[derive(Clone, Debug)]
pub struct Package {
    /// The folder of its `Cargo.toml`.
    pub dir: PathBuf,
    /// Its crate roots, the library first.
    pub roots: Vec<Root>,
}

/// A `Cargo.toml` that could not be read.
#[derive(Debug)]
pub struct LoadError {
    /// The manifest.
    pub path: PathBuf,
    /// Why: the I/O or TOML error.
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

#[derive(Deserialize)]
struct Manifest {
    package: Option<ManifestPackage>,
    lib: Option<Target>,
    #[serde(default)]
    bin: Vec<Target>,
    #[serde(default)]
    example: Vec<Target>,
    #[serde(default)]
    test: Vec<Target>,
    #[serde(default)]
    bench: Vec<Target>,
}

#[derive(Deserialize)]
struct ManifestPackage {
    name: String,
}

#[derive(Deserialize)]
struct Target {
    name: Option<String>,
    path: Option<PathBuf>,
}

impl Package {
    /// The package whose `Cargo.toml` is in `dir`: its declared targets and
    /// those cargo finds by itself (`src/lib.rs`, `src/main.rs`,
    /// `src/bin/*.rs`, `examples/`, `tests/`, `benches/`). A workspace
    /// manifest with no `[package]` has no roots.
    pub fn read(dir: &Path) -> Result<Package, LoadError> {
        let path = dir.join("Cargo.toml");
        let error = |message: String| LoadError {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        let mut roots = Vec::new();
        let Some(package) = &manifest.package else {
            return Ok(Package {
                dir: dir.to_owned(),
                roots,
            });
        };
        let lib_path = manifest
            .lib
            .as_ref()
            .and_then(|l| l.path.clone())
            .unwrap_or_else(|| PathBuf::from("src/lib.rs"));
        if dir.join(&lib_path).is_file() {
            let name = manifest
                .lib
                .as_ref()
                .and_then(|l| l.name.clone())
                .unwrap_or_else(|| package.name.replace('-', "_"));
            roots.push(Root {
                file: dir.join(lib_path),
                library: Some(name),
            });
        }
        let mut add = |file: PathBuf| {
            if file.is_file() && !roots.iter().any(|r| r.file == file) {
                roots.push(Root {
                    file,
                    library: None,
                });
            }
        };
        for target in [
            &manifest.bin,
            &manifest.example,
            &manifest.test,
            &manifest.bench,
        ] {
            for declared in target.iter().filter_map(|t| t.path.as_ref()) {
                add(dir.join(declared));
            }
        }
        add(dir.join("src/main.rs"));
        for folder in ["src/bin", "examples", "tests", "benches"] {
            for file in rust_files_in(&dir.join(folder)) {
                add(file);
            }
        }
        Ok(Package {
            dir: dir.to_owned(),
            roots,
        })
    }
}

/// `folder/*.rs` and `folder/*/main.rs`, sorted.
fn rust_files_in(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            if p.is_dir() {
                Some(p.join("main.rs")).filter(|m| m.is_file())
            } else {
                p.extension().is_some_and(|e| e == "rs").then_some(p)
            }
        })
        .collect();
    files.sort();
    files
}

/// Where the file of `mod name;` declared in `file` may be, in rustc's
/// order, when the module's `mod` files are in `dir`: `dir/name.rs`, then
/// `dir/name/mod.rs`; or the `#[path]` given, relative to `dir` (inside an
/// inline module) or to the file's folder.
pub(crate) fn module_file_candidates(
    dir: &Path,
    file: &Path,
    top_level: bool,
    name: &str,
    attr_path: Option<&str>,
) -> Vec<PathBuf> {
    if let Some(path) = attr_path {
        let base = if top_level {
            file.parent().unwrap_or(dir)
        } else {
            dir
        };
        return vec![base.join(path)];
    }
    vec![
        dir.join(format!("{name}.rs")),
        dir.join(name).join("mod.rs"),
    ]
}

/// Where the `mod x;` files of a module file are: beside a `mod.rs` or a
/// file named by `#[path]`, in a folder named after any other file.
pub(crate) fn children_dir(file: &Path, through_path_attribute: bool) -> PathBuf {
    let parent = file.parent().map(Path::to_owned).unwrap_or_default();
    match file.file_stem() {
        Some(stem) if !through_path_attribute && stem != "mod" => parent.join(stem),
        _ => parent,
    }
}
