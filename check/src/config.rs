//! `lanes.toml`: project rules read by the macros and by `cargo lanes audit`.
//!
//! ```toml
//! # Built-in rules (by id) or calls (by path, `.method` for methods) never flagged.
//! allow = ["std::fs::metadata", "thread-join"]
//!
//! # The project's own offloaders: their closure arguments are not checked.
//! offload = ["crate::pool::run_sync", ".in_worker"]
//!
//! # Calls that block, beyond the built-in table.
//! [[blocking]]
//! path = "legacy_db::Client::query"  # matches `Client::query(..)` and any longer path ending so
//! reason = "legacy_db is a synchronous client"
//! fix = "use `legacy_db::r#async::query(..).await`"
//!
//! [[blocking]]
//! method = "fetch_sync"              # matches any `.fetch_sync(..)` call
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::Deserialize;

/// The file name looked for at the crate root.
pub const FILE_NAME: &str = "lanes.toml";

/// Overrides the folder `lanes.toml` is read from (like clippy's
/// `CLIPPY_CONF_DIR`); the crate root (`CARGO_MANIFEST_DIR`) otherwise.
pub const DIR_ENV: &str = "LANES_CONF_DIR";

/// A project's rules.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[[blocking]]`: calls that block, beyond the built-in rules.
    #[serde(default)]
    pub blocking: Vec<CustomRule>,
    /// Rule ids (`thread-join`), resolved call paths (`std::fs::metadata`),
    /// methods (`.exists`) or `[[blocking]]` paths never flagged.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The project's own offloading APIs, whose closure arguments run on
    /// another thread: paths (`my_pool::run`) or methods (`.run_sync`).
    #[serde(default)]
    pub offload: Vec<String>,
}

/// One extra blocking call.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// A function path: matches calls written with at least its last two
    /// segments (or its only one), or with a longer path ending in it.
    pub path: Option<String>,
    /// A method name: matches every `.method(..)` call.
    pub method: Option<String>,
    /// Why the call blocks, shown after its name.
    pub reason: Option<String>,
    /// What to do instead, shown after the semicolon.
    pub fix: Option<String>,
}

/// A `lanes.toml` that could not be used.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it: the read or TOML error, an unknown key, or
    /// a `[[blocking]]` entry without exactly one of `path` or `method`.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and validates the text of a `lanes.toml`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let error = |message: String| ConfigError {
            path: path.to_owned(),
            message,
        };
        let config: Config = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        for rule in &config.blocking {
            match (&rule.path, &rule.method) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(error(
                        "each [[blocking]] entry needs exactly one of `path` or `method`".into(),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// The configuration of the crate being compiled: the file and its rules,
    /// or `None` when there is no `lanes.toml`. Parsed once per file version,
    /// since a macro runs once per annotated fn.
    pub fn for_current_crate() -> Result<Option<(PathBuf, Config)>, ConfigError> {
        let Some(dir) =
            std::env::var_os(DIR_ENV).or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        else {
            return Ok(None);
        };
        let path = Path::new(&dir).join(FILE_NAME);
        let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
            return Ok(None);
        };
        static CACHE: Mutex<Option<HashMap<PathBuf, (SystemTime, Config)>>> = Mutex::new(None);
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = cache.get_or_insert_with(HashMap::new);
        if let Some((seen, config)) = cache.get(&path)
            && *seen == modified
        {
            return Ok(Some((path, config.clone())));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let config = Config::parse(&text, &path)?;
        cache.insert(path.clone(), (modified, config.clone()));
        Ok(Some((path, config)))
    }

    /// A finding of `rule` for `call` is silenced by `allow`.
    pub(crate) fn allows(&self, rule: &str, call: &str) -> bool {
        self.allow
            .iter()
            .any(|entry| entry == rule || entry == call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_needs_exactly_one_of_path_or_method() {
        let both = "[[blocking]]\npath = \"a::b\"\nmethod = \"c\"\n";
        let err = Config::parse(both, Path::new("lanes.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid lanes.toml: each [[blocking]] entry needs exactly one of `path` or `method`"
        );
    }

    /// The first ```` ```toml ```` block of a file's `//!` docs.
    fn documented_example(doc: &str) -> String {
        doc.lines()
            .skip_while(|l| *l != "//! ```toml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_documented_example_parses() {
        let example = documented_example(include_str!("config.rs"));
        let config = Config::parse(&example, Path::new("lanes.toml")).unwrap();
        assert_eq!(config.offload, ["crate::pool::run_sync", ".in_worker"]);
        assert_eq!(config.blocking.len(), 2);
    }

    /// `lanes::config_file`, the users' reference, shows a file this parser
    /// takes. Read at run time: the `lanes` crate is beside this one in the
    /// workspace, not in this crate's package.
    #[test]
    fn the_example_in_the_lanes_docs_parses() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src/config_file.rs");
        let example = documented_example(&std::fs::read_to_string(docs).unwrap());
        let config = Config::parse(&example, Path::new("lanes.toml")).unwrap();
        assert_eq!(config.allow, ["std::fs::metadata", "thread-join"]);
        assert_eq!(config.offload, ["crate::pool::run_sync", ".in_worker"]);
        let paths: Vec<_> = config
            .blocking
            .iter()
            .map(|rule| (&rule.path, &rule.method))
            .collect();
        assert_eq!(
            paths,
            [
                (&Some("legacy_db::Client::query".to_owned()), &None),
                (&None, &Some("fetch_sync".to_owned())),
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = Config::parse("alow = []\n", Path::new("lanes.toml")).unwrap_err();
        assert!(
            err.message.contains("unknown field `alow`"),
            "{}",
            err.message
        );
    }
}
