//! The model for the macros: built at most once per compilation for the
//! crate rustc is compiling, and built again only when a file's contents
//! change, so that a long-lived proc-macro server (an editor's) never
//! answers from stale files. A file is read again only when its size or
//! time changed, or when it was written too recently for its time to tell.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use super::{Model, Package, Place, Root};
use crate::config::Config;

/// What a file was when the model read it.
struct Stamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    /// The file's time was well before it was read: a later write within
    /// the same tick of the file system's clock cannot hide behind it.
    settled: bool,
    contents: u64,
}

/// A file's time older than this, when read, is trusted to change with its
/// contents (as git trusts its index for files not "racily" new).
const SETTLED: Duration = Duration::from_secs(2);

impl Stamp {
    fn new(path: &Path, meta: &std::fs::Metadata, bytes: &[u8]) -> Stamp {
        let modified = meta.modified().ok();
        Stamp {
            path: path.to_owned(),
            len: meta.len(),
            modified,
            settled: is_settled(modified),
            contents: hash(bytes),
        }
    }

    /// The file is as it was: the same size and time for a settled file,
    /// else the same contents (a `touch`, a save without edits, a write in
    /// the same tick of the clock).
    fn still_holds(&mut self) -> bool {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return false;
        };
        let modified = meta.modified().ok();
        if self.settled && meta.len() == self.len && modified == self.modified {
            return true;
        }
        match std::fs::read(&self.path) {
            Ok(bytes) if hash(&bytes) == self.contents => {
                self.len = meta.len();
                self.modified = modified;
                self.settled = is_settled(modified);
                true
            }
            _ => false,
        }
    }
}

fn is_settled(modified: Option<SystemTime>) -> bool {
    modified
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age > SETTLED)
}

struct Cached {
    roots: Vec<Root>,
    config: String,
    stamps: Vec<Stamp>,
    model: Arc<Model>,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// The model of the crate that holds `file` (a path as rustc gave it), and
/// the place of `line` in it, for a macro running inside rustc. `None` when
/// the file is not one of the crate's, so that the macro checks the body
/// alone.
pub fn for_macro(file: &Path, line: usize, config: &Config) -> Option<(Arc<Model>, Place)> {
    let file = std::fs::canonicalize(file).ok()?;
    let model = model_for(&file, config)?;
    let place = model.place_at(&file, line)?;
    Some((model, place))
}

fn model_for(file: &Path, config: &Config) -> Option<Arc<Model>> {
    let in_rustc = rustc_root().is_some();
    let roots = compiled_roots(file);
    let config_key = format!("{config:?}");
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    // Inside rustc the sources are those of this one compilation: checked
    // once, when the model is built. A long-lived server checks them at
    // every call.
    if let Some(cached) = cache.as_mut()
        && cached.roots == roots
        && cached.config == config_key
        && (in_rustc || cached.stamps.iter_mut().all(Stamp::still_holds))
        && cached.model.files.contains_key(file)
    {
        return Some(Arc::clone(&cached.model));
    }
    let (model, stamps) = build_outside_the_compiler(&roots, config);
    let model = Arc::new(model);
    *cache = Some(Cached {
        roots,
        config: config_key,
        stamps,
        model: Arc::clone(&model),
    });
    model.files.contains_key(file).then_some(model)
}

/// The roots of the crate being compiled: the root file rustc was given
/// (the proc macro runs inside rustc, so its arguments are rustc's; one
/// process compiles one crate), or, elsewhere (an editor's proc-macro
/// server), the file itself; and the package's library, which a binary
/// names by its crate name.
fn compiled_roots(file: &Path) -> Vec<Root> {
    match rustc_root() {
        Some(root) => {
            static ROOTS: OnceLock<Vec<Root>> = OnceLock::new();
            ROOTS.get_or_init(|| with_library(root.clone())).clone()
        }
        None => with_library(file.to_owned()),
    }
}

/// The crate root among rustc's arguments, when the macro runs inside rustc.
fn rustc_root() -> Option<&'static PathBuf> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::args()
            .skip(1)
            .filter(|arg| arg.ends_with(".rs"))
            .find_map(|arg| std::fs::canonicalize(arg).ok())
    })
    .as_ref()
}

/// `root`, with the package's library first when `root` is another target.
fn with_library(root: PathBuf) -> Vec<Root> {
    let library = std::env::var_os("CARGO_MANIFEST_DIR")
        .and_then(|dir| Package::read(Path::new(&dir)).ok())
        .and_then(|package| package.roots.into_iter().find(|r| r.library.is_some()))
        .and_then(|lib| {
            let file = std::fs::canonicalize(&lib.file).ok()?;
            Some(Root { file, ..lib })
        });
    match library {
        Some(lib) if lib.file == root => vec![lib],
        Some(lib) => vec![
            lib,
            Root {
                file: root,
                library: None,
            },
        ],
        None => vec![Root {
            file: root,
            library: None,
        }],
    }
}

/// Parses with proc-macro2's own implementation, which gives real line
/// numbers and works outside the compiler's token API; the model keeps no
/// tokens, so nothing parsed here reaches the macro's output.
fn build_outside_the_compiler(roots: &[Root], config: &Config) -> (Model, Vec<Stamp>) {
    struct Unforce;
    impl Drop for Unforce {
        fn drop(&mut self) {
            proc_macro2::extra::invalidate_current_thread_spans();
            proc_macro2::fallback::unforce();
        }
    }
    proc_macro2::fallback::force();
    let _unforce = Unforce;
    let mut stamps = Vec::new();
    let mut open = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        let bytes = std::fs::read(path).ok()?;
        stamps.push(Stamp::new(path, &meta, &bytes));
        syn::parse_file(std::str::from_utf8(&bytes).ok()?).ok()
    };
    let base = std::env::var_os("CARGO_MANIFEST_DIR")
        .and_then(|dir| std::fs::canonicalize(dir).ok())
        .filter(|dir| roots.iter().all(|r| r.file.starts_with(dir)))
        .or_else(|| {
            roots
                .last()
                .and_then(|r| r.file.parent())
                .map(Path::to_owned)
        })
        .unwrap_or_default();
    let (model, sources) = Model::build(roots, &base, config, &mut open);
    drop(sources);
    (model, stamps)
}
