//! The built-in rule table: what counts as blocking, as data.
//!
//! A macro sees tokens, not types, so every rule matches a path or a call
//! shape. The table is grouped by the headings of DESIGN.md's "What counts as
//! blocking".

/// What a rule is about; decides which lanes it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sleeping, file, process, network I/O, runtime re-entry, waiting on a
    /// thread or a sync channel: wrong on a tokio worker and on a CPU thread.
    Blocking,
    /// Known CPU-heavy calls: wrong on a tokio worker, right on `#[cpu_bound]`.
    CpuHeavy,
}

/// How a rule recognises a call.
#[derive(Clone, Copy, Debug)]
pub enum Matcher {
    /// A call `a::b::c(..)` whose written path is a suffix of `path` with at
    /// least `min` segments: `["std", "thread", "sleep"]` with `min: 1`
    /// matches `sleep(..)`, `thread::sleep(..)` and `std::thread::sleep(..)`.
    /// A `"*"` segment matches any name.
    Path {
        path: &'static [&'static str],
        min: usize,
    },
    /// A call whose written path starts with `prefix`: `ureq::get(..)`.
    PathPrefix(&'static [&'static str]),
    /// A method call `.name(..)`; `args` restricts the argument count so that
    /// `.join()` (a thread) is told apart from `.join(",")` (a slice).
    Method {
        name: &'static str,
        args: Option<usize>,
    },
    /// A method call on a value built by `std::process::Command::new(..)`,
    /// either in the same chain or through a `let` binding.
    CommandMethod(&'static str),
}

/// One built-in rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Stable identifier, used in `lanes.toml`'s `allow` list and by the CLI.
    pub id: &'static str,
    pub kind: Kind,
    pub matcher: Matcher,
    /// How the flagged call is named in the message; `{name}` is the called
    /// function or method, `{path}` the whole path, as written.
    pub call: &'static str,
    /// What to do instead on a tokio worker; `{name}` as above.
    pub fix: &'static str,
}

macro_rules! fix {
    ($head:literal) => {
        concat!($head, ", or move this work into a #[blocking] fn")
    };
}

/// The built-in rules, in DESIGN.md order.
pub const BUILTIN: &[Rule] = &[
    // Sleeping.
    Rule {
        id: "thread-sleep",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "thread", "sleep"],
            min: 1,
        },
        call: "`std::thread::sleep`",
        fix: fix!("use `tokio::time::sleep(..).await`"),
    },
    // Files and processes.
    Rule {
        id: "std-fs",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "fs", "*"],
            min: 2,
        },
        call: "`std::fs::{name}`",
        fix: fix!("use `tokio::fs::{name}(..).await`"),
    },
    Rule {
        id: "file-open",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "fs", "File", "open"],
            min: 2,
        },
        call: "`std::fs::File::open`",
        fix: fix!("use `tokio::fs::File::open(..).await`"),
    },
    Rule {
        id: "file-create",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "fs", "File", "create"],
            min: 2,
        },
        call: "`std::fs::File::create`",
        fix: fix!("use `tokio::fs::File::create(..).await`"),
    },
    Rule {
        id: "stdin",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "io", "stdin"],
            min: 2,
        },
        call: "`std::io::stdin`",
        fix: fix!("use `tokio::io::stdin()` and `.await` its reads"),
    },
    Rule {
        id: "process-output",
        kind: Kind::Blocking,
        matcher: Matcher::CommandMethod("output"),
        call: "`std::process::Command::output`",
        fix: fix!("use `tokio::process::Command` and `.output().await`"),
    },
    Rule {
        id: "process-status",
        kind: Kind::Blocking,
        matcher: Matcher::CommandMethod("status"),
        call: "`std::process::Command::status`",
        fix: fix!("use `tokio::process::Command` and `.status().await`"),
    },
    Rule {
        id: "process-wait",
        kind: Kind::Blocking,
        matcher: Matcher::CommandMethod("wait"),
        call: "`std::process::Child::wait`",
        fix: fix!("use `tokio::process::Command` and `.wait().await`"),
    },
    // Network.
    Rule {
        id: "tcp-connect",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "net", "TcpStream", "*"],
            min: 2,
        },
        call: "`std::net::TcpStream::{name}`",
        fix: fix!("use `tokio::net::TcpStream::connect(..).await`"),
    },
    Rule {
        id: "socket-accept",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "accept",
            args: Some(0),
        },
        call: "`.accept()` on a std listener",
        fix: fix!("use `tokio::net::TcpListener` and `.accept().await`"),
    },
    Rule {
        id: "reqwest-blocking",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["reqwest", "blocking"]),
        call: "`{path}`",
        fix: fix!("use the async `reqwest::Client` and `.await` its futures"),
    },
    Rule {
        id: "ureq",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["ureq"]),
        call: "`{path}` (a blocking HTTP client)",
        fix: fix!("use an async client such as `reqwest::Client`"),
    },
    // Re-entering a runtime.
    Rule {
        id: "block-on",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "block_on",
            args: None,
        },
        call: "`.block_on(..)`",
        fix: "`.await` the future instead: a runtime entered from inside a runtime panics or deadlocks",
    },
    Rule {
        id: "block-on",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["futures", "executor", "block_on"],
            min: 1,
        },
        call: "`block_on`",
        fix: "`.await` the future instead: a runtime entered from inside a runtime panics or deadlocks",
    },
    // tokio's own blocking bridges.
    Rule {
        id: "tokio-blocking-recv",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_recv",
            args: None,
        },
        call: "`.blocking_recv()`",
        fix: "use `.recv().await`",
    },
    Rule {
        id: "tokio-blocking-send",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_send",
            args: None,
        },
        call: "`.blocking_send(..)`",
        fix: "use `.send(..).await`",
    },
    Rule {
        id: "tokio-blocking-lock",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_lock",
            args: None,
        },
        call: "`.blocking_lock()`",
        fix: "use `.lock().await`",
    },
    Rule {
        id: "tokio-blocking-read",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_read",
            args: None,
        },
        call: "`.blocking_read()`",
        fix: "use `.read().await`",
    },
    Rule {
        id: "tokio-blocking-write",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_write",
            args: None,
        },
        call: "`.blocking_write()`",
        fix: "use `.write().await`",
    },
    // Waiting for a thread.
    Rule {
        id: "thread-join",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "join",
            args: Some(0),
        },
        call: "`.join()` on a thread",
        fix: "`.await` a `tokio::task::JoinHandle` (from `tokio::task::spawn_blocking`) instead",
    },
    // Known CPU-heavy calls.
    Rule {
        id: "bcrypt",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["bcrypt"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "argon2",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["argon2"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "password-hash",
        kind: Kind::CpuHeavy,
        matcher: Matcher::Method {
            name: "hash_password",
            args: None,
        },
        call: "`.hash_password(..)`",
        fix: CPU_FIX,
    },
    Rule {
        id: "password-hash",
        kind: Kind::CpuHeavy,
        matcher: Matcher::Method {
            name: "verify_password",
            args: None,
        },
        call: "`.verify_password(..)`",
        fix: CPU_FIX,
    },
    Rule {
        id: "scrypt",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["scrypt"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "pbkdf2",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["pbkdf2"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
];

const CPU_FIX: &str =
    "a password hash costs tens to hundreds of milliseconds of CPU; move it into a #[cpu_bound] fn";

/// Paths whose closure arguments run somewhere else than the calling task, so
/// blocking inside them is the point, not a mistake. Matched like
/// [`Matcher::Path`].
pub(crate) const OFFLOADERS: &[(&[&str], usize)] = &[
    (&["tokio", "task", "spawn_blocking"], 1),
    (&["tokio", "task", "block_in_place"], 1),
    (&["std", "thread", "spawn"], 2),
    (&["rayon", "spawn"], 2),
    (&["rayon", "spawn_fifo"], 2),
    (&["lanes", "run_blocking"], 1),
    (&["lanes", "run_cpu"], 1),
];

/// Methods whose closure arguments are offloaded: `handle.spawn_blocking(..)`,
/// `pool.spawn(..)` on a rayon pool or a `thread::Builder`. Only closures are
/// exempt: an async block handed to `.spawn(..)` runs on a tokio worker and is
/// checked.
pub(crate) const OFFLOADING_METHODS: &[&str] = &["spawn_blocking", "spawn", "spawn_fifo"];

/// The written path `written` is a suffix of `pattern` of at least `min`
/// segments; `"*"` in the pattern matches any segment.
pub(crate) fn path_matches(written: &[String], pattern: &[&str], min: usize) -> bool {
    if written.len() < min.min(pattern.len()) || written.len() > pattern.len() {
        return false;
    }
    let tail = &pattern[pattern.len() - written.len()..];
    written.iter().zip(tail).all(|(w, p)| *p == "*" || w == p)
}

/// The written path starts with `prefix` and names something inside it.
pub(crate) fn path_starts_with(written: &[String], prefix: &[&str]) -> bool {
    written.len() > prefix.len() && written.iter().zip(prefix).all(|(w, p)| w == p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.split("::").map(str::to_owned).collect()
    }

    #[test]
    fn suffix_matching_respects_the_minimum() {
        let sleep = ["std", "thread", "sleep"];
        assert!(path_matches(&segs("sleep"), &sleep, 1));
        assert!(path_matches(&segs("thread::sleep"), &sleep, 1));
        assert!(path_matches(&segs("std::thread::sleep"), &sleep, 1));
        assert!(!path_matches(&segs("tokio::time::sleep"), &sleep, 1));
        assert!(!path_matches(&segs("my::std::thread::sleep"), &sleep, 1));

        let fs = ["std", "fs", "*"];
        assert!(path_matches(&segs("fs::read"), &fs, 2));
        assert!(path_matches(&segs("std::fs::write"), &fs, 2));
        assert!(!path_matches(&segs("read"), &fs, 2));
        assert!(!path_matches(&segs("tokio::fs::read"), &fs, 2));
    }

    #[test]
    fn prefix_matching_needs_an_item_inside_the_prefix() {
        assert!(path_starts_with(&segs("ureq::get"), &["ureq"]));
        assert!(path_starts_with(
            &segs("reqwest::blocking::get"),
            &["reqwest", "blocking"]
        ));
        assert!(!path_starts_with(
            &segs("reqwest::get"),
            &["reqwest", "blocking"]
        ));
        assert!(!path_starts_with(&segs("ureq"), &["ureq"]));
    }
}
