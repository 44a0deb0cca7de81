//! Implementation detail of the `lanes` crate: the attribute macros. Use
//! them through `lanes` (`#[lanes::io_bound]`, ..), whose re-exports carry
//! the examples; each macro here states the limits a user meets.
//!
//! Each entry point is one line; `entry::expand` drives
//! parse -> validate -> expand for every lane.

#![warn(missing_docs)]

mod args;
mod background;
mod entry;
mod errors;
mod expand;
mod item;
mod lane;
mod pattern;
mod private;
mod recursion;
mod valid;

use lane::Lane;
use proc_macro::TokenStream;

/// # Limits
///
/// - On an `async fn` only; not `const`, `unsafe` or `extern`.
/// - Refused in the body, at the call: each call of `lanes::rules`
///   checked in `#[io_bound]` (a blocking call, or a CPU-heavy one such as a
///   password hash), also when reached through the crate's own sync
///   helpers, and a std or parking_lot lock guard alive at an `.await`. One
///   statement can be exempted with `#[lanes::allow_blocking("why")]`.
/// - Arguments: whatever an `async fn` takes, borrows included (the fn
///   stays on the task that awaits it). The only option is
///   `timeout = "2s"` (`ms`, `s`, `m`, `h`); with it the fn returns
///   `Result<T, E>` with `E: From<lanes::TimedOut>`.
/// - A fn that calls itself needs the recursion boxed
///   (`Box::pin(f(..)).await`), as any `async fn` does.
/// - axum's `#[debug_handler]` may go above or below it.
#[proc_macro_attribute]
pub fn io_bound(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::IoBound, args.into(), item.into()).into()
}

/// # Limits
///
/// - On a plain `fn` (not `async`, `const`, `unsafe` or `extern`); it
///   becomes an `async fn` that the caller awaits. `.await` in the body is
///   refused.
/// - Arguments and the return value move between threads: they must be
///   owned and `Send + 'static`, so no `&str`, `&self`, `&mut self` or
///   lifetime parameters (`self` by value is fine). Take `String`,
///   `PathBuf`, `Arc<T>`.
/// - A fn that calls itself is refused (the inner call would be a future):
///   move the recursion into a plain inner fn.
/// - Options: `limit = N` (at least 1), at most N calls of this fn at once;
///   `timeout = "2s"` per call, which needs a return type
///   `Result<T, E>` with `E: From<lanes::TimedOut>`.
/// - axum's `#[debug_handler]` goes below it (`#[lanes::blocking]` first),
///   so that it checks the async handler the lane makes; above it, it sees
///   a plain `fn` and fails.
#[proc_macro_attribute]
pub fn blocking(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::Blocking, args.into(), item.into()).into()
}

/// # Limits
///
/// - The limits of `#[blocking]` (a plain `fn`, no `.await`, owned `Send +
///   'static` arguments and result, no direct recursion, `#[debug_handler]`
///   below it), but its only option is `timeout = "2s"`.
/// - Refused in the body: sleeping, blocking I/O and `block_on` (each call
///   of `lanes::rules` checked in `#[cpu_bound]`), which would idle one of
///   the few CPU threads; they belong on `#[blocking]`. Password hashing is
///   what this lane is for.
#[proc_macro_attribute]
pub fn cpu_bound(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::CpuBound, args.into(), item.into()).into()
}

/// # Limits
///
/// - On a free `async fn` or `fn`: not a method (a job has no `self`), not
///   generic (a stored job names one concrete fn), not `const`, `unsafe` or
///   `extern`. An `async` body is checked like `#[io_bound]`'s, a plain one
///   like `#[blocking]`'s.
/// - Each argument is one of:
///   - a value to store: every name its pattern binds (`welcome`, or the
///     `body` of `Json(body): Json<T>`) must be owned and
///     `Serialize + DeserializeOwned`; a pattern that drops a part (`_`,
///     `..`) is refused, since the job could not be given it;
///   - `State<S>` (under any pattern): not stored; the workers give the
///     job their own `S`, set with `WorkerConfig::state`, so `S` must be
///     `Clone + Send + Sync + 'static`;
///   - `JobContext`, at most one: not stored; the worker passes it
///     (progress, cancellation, the attempt number).
///
///   `State` and `JobContext` are recognised by the last segment of their
///   path as written; an alias under another name is a value to store.
/// - It returns `()` or `Result<T, E>` with `T: Serialize` (the job's
///   result) and `E: Display` (its error).
/// - Options: `queue = "name"`, `retries = N` (attempts after the first,
///   from 0), `timeout = "30s"` per attempt (`ms`, `s`, `m`, `h`, not
///   zero), `kind = "name"`; queue and kind names are non-empty and have no
///   spaces.
/// - axum's `#[debug_handler]` goes below it; above it, it would register
///   the job kind twice.
#[proc_macro_attribute]
pub fn background(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::Background, args.into(), item.into()).into()
}

#[cfg(test)]
mod tests;
