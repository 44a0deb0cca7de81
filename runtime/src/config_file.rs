//! Project rules in `lanes.toml`, and the statement-level escape hatch.
//!
//! This module holds no items: it documents what the attributes read at
//! compile time besides the fn they are on. The built-in rules are listed in
//! [`rules`](crate::rules).
//!
//! # `lanes.toml`
//!
//! The attributes, and `cargo lanes audit`, read a `lanes.toml` in the
//! folder of the crate being compiled (its `CARGO_MANIFEST_DIR`), or in
//! the folder the `LANES_CONF_DIR` environment variable names. With no file,
//! only the built-in rules apply. Cargo rebuilds the crate when the file or
//! `LANES_CONF_DIR` changes. Every key is optional:
//!
//! ```toml
//! # Built-in rules (by id) or calls (by path, `.method` for methods) never flagged.
//! allow = ["std::fs::metadata", "thread-join"]
//!
//! # The project's own offloaders: the closures given to them run on another
//! # thread, so they are not checked as inline code.
//! offload = ["crate::pool::run_sync", ".in_worker"]
//!
//! # Calls that block, beyond the built-in rules.
//! [[blocking]]
//! path = "legacy_db::Client::query"    # matches `Client::query(..)`, `legacy_db::Client::query(..)`, `crate::legacy_db::Client::query(..)`
//! reason = "a synchronous database client"
//! fix = "use `legacy_db::r#async::query(..).await`"
//!
//! [[blocking]]
//! method = "fetch_sync"                # every `.fetch_sync(..)` call
//! ```
//!
//! - `allow`: each entry is a rule id (`thread-join`, as ending every
//!   message: `[lanes::thread-join]`), a resolved call path
//!   (`std::fs::metadata`), a method as `.name`, or the `path` of a
//!   `[[blocking]]` entry. A call it names is never flagged.
//! - `offload`: paths (`crate::pool::run_sync`, matched like a `[[blocking]]`
//!   path) or methods (`.in_worker`) whose closure arguments run elsewhere.
//!   A closure given to one is not checked; an async block still is, since
//!   it runs where it is awaited.
//! - `[[blocking]]`: exactly one of `path` or `method`, and optionally
//!   `reason` (shown after the call's name) and `fix` (shown after the
//!   semicolon; default "move this work into a `#[blocking]` fn"). A `path`
//!   matches a call written with at least its last two segments (or its
//!   only one), or with a longer path that ends with it; a `method`
//!   matches every `.method(..)` call. These calls are refused where the
//!   built-in blocking calls are: in `#[io_bound]`, `#[cpu_bound]` and
//!   `#[background] async fn` bodies, and by the audit. The message ends
//!   with `[lanes.toml: <path or .method>]`.
//!
//! An unknown key, or an entry with both or neither of `path` and `method`,
//! is a compile error naming the file (`invalid /app/lanes.toml: unknown
//! field `alow`, ...`) on every annotated fn, and the built-in rules still
//! apply; the audit exits with status 2.
//!
//! # The escape hatch: `#[lanes::allow_blocking("why")]`
//!
//! One statement of a lane fn's body can be exempted from every rule. The
//! attribute takes a written reason, so that each exception says why it
//! cannot stall the server; `#[allow_blocking(..)]` (imported) works too.
//! The lane attribute removes it before rustc sees the body, so it only
//! works inside a fn that carries one (`#[io_bound]`, `#[cpu_bound]`,
//! `#[background]`):
//!
//! ```
//! #[lanes::io_bound]
//! async fn settings() -> usize {
//!     #[lanes::allow_blocking("Cargo.toml is read once, before the server starts")]
//!     let text = std::fs::read_to_string("Cargo.toml").unwrap_or_default();
//!     text.len()
//! }
//! ```
//!
//! Without a reason, the attribute is an error of its own:
//!
//! ```compile_fail
//! #[lanes::io_bound]
//! async fn settings() -> usize {
//!     #[lanes::allow_blocking]
//!     let text = std::fs::read_to_string("Cargo.toml").unwrap_or_default();
//!     // error: `#[lanes::allow_blocking]` needs a written reason:
//!     //        `#[lanes::allow_blocking("why this call cannot stall the server")]`
//!     text.len()
//! }
//! ```
//!
//! A whole fn that blocks belongs on `#[blocking]` or `#[cpu_bound]`
//! instead; a call that is never a problem in this project belongs in
//! `allow`.
