//! Which `lanes.toml` applies to each audited file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lanes_check::{Config, ConfigError};

use crate::Error;

/// The rules of every file: one `lanes.toml` for all, or each folder's
/// nearest, read once per folder.
pub(crate) enum Configs {
    /// Named by `LANES_CONF_DIR`, as the macros would read it.
    Fixed(Config),
    Nearest {
        root: PathBuf,
        by_folder: HashMap<PathBuf, Config>,
    },
}

impl Configs {
    /// Reads the `lanes.toml` of `config_dir` at once when there is one:
    /// its absence is an error, since it was asked for.
    pub(crate) fn new(root: &Path, config_dir: Option<&Path>) -> Result<Configs, Error> {
        let Some(dir) = config_dir else {
            return Ok(Configs::Nearest {
                root: root.to_owned(),
                by_folder: HashMap::new(),
            });
        };
        let path = dir.join(lanes_check::FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|error| Error::MissingConfig {
            path: path.clone(),
            error,
        })?;
        Ok(Configs::Fixed(Config::parse(&text, &path)?))
    }

    pub(crate) fn for_file(&mut self, file: &Path) -> Result<&Config, ConfigError> {
        let (root, by_folder) = match self {
            Configs::Fixed(config) => return Ok(config),
            Configs::Nearest { root, by_folder } => (root, by_folder),
        };
        let folder = file.parent().unwrap_or(root).to_owned();
        if !by_folder.contains_key(&folder) {
            let config = nearest(root, &folder)?;
            by_folder.insert(folder.clone(), config);
        }
        Ok(&by_folder[&folder])
    }
}

/// The rules of the nearest `lanes.toml` from `folder` up to `root`.
fn nearest(root: &Path, folder: &Path) -> Result<Config, ConfigError> {
    for dir in folder.ancestors() {
        let path = dir.join(lanes_check::FILE_NAME);
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Config::parse(&text, &path);
        }
        if dir == root {
            break;
        }
    }
    Ok(Config::default())
}
