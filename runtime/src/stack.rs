//! The stack of a tokio worker caught stuck in one poll, taken while it is
//! still stuck: on Linux the watchdog sends the worker a signal, the handler
//! records the raw frame addresses into a preallocated buffer (nothing
//! else: no allocation, no lock), and the watchdog symbolizes them on its
//! own thread. Elsewhere there is no stack, and reports say so.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::Serialize;

/// One frame of a report, as symbolized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Frame {
    /// The function, without its hash, e.g. `showcase::vendor::fetch_rates`.
    pub function: String,
    /// The source file, relative to the working directory when under it.
    pub file: Option<String>,
    /// The line in `file`; `None` when the debug info has no line for it.
    pub line: Option<u32>,
}

/// Where a stuck poll was, trimmed to what a user needs to fix it: the
/// frames of the user's own crates (outermost first), and the library call
/// they made that blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stack {
    /// The user's frames, outermost first; when the thread was stuck in
    /// library code only, its innermost library frames.
    pub frames: Vec<Frame>,
    /// The outermost library function below the user's innermost frame,
    /// e.g. `std::thread::sleep`.
    pub blocking_call: Option<String>,
}

impl fmt::Display for Stack {
    /// `a::handler (src/a.rs:10) → a::helper (src/a.rs:3) → std::thread::sleep`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut arrow = |f: &mut fmt::Formatter<'_>| {
            let sep = if first { "" } else { " → " };
            first = false;
            f.write_str(sep)
        };
        for frame in &self.frames {
            arrow(f)?;
            f.write_str(&frame.function)?;
            match (&frame.file, frame.line) {
                (Some(file), Some(line)) => write!(f, " ({file}:{line})")?,
                (Some(file), None) => write!(f, " ({file})")?,
                _ => {}
            }
        }
        if let Some(call) = &self.blocking_call {
            arrow(f)?;
            f.write_str(call)?;
        }
        Ok(())
    }
}

/// Why a report has no stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoStack {
    /// Not Linux: there is no way to ask another thread for its stack.
    #[cfg(not(target_os = "linux"))]
    Unsupported,
    /// The signal handler could not be installed.
    NoHandler,
    /// The poll ended before the thread answered.
    PollEnded,
    /// The thread did not answer the signal in time.
    NoAnswer,
    /// Too many stuck polls waited to be symbolized.
    Backlog,
}

impl fmt::Display for NoStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            #[cfg(not(target_os = "linux"))]
            NoStack::Unsupported => "no stack: capturing another thread's stack needs Linux",
            NoStack::NoHandler => {
                "no stack: the signal handler for stack capture could not be installed"
            }
            NoStack::PollEnded => "no stack: the poll ended before its stack was taken",
            NoStack::NoAnswer => "no stack: the stuck thread did not answer in time",
            NoStack::Backlog => "no stack: too many stuck polls were waiting to be symbolized",
        })
    }
}

/// The innermost-first frame addresses of one capture.
pub(crate) type RawFrames = Vec<usize>;

/// Turns raw addresses (innermost first, from inside the signal handler)
/// into a trimmed [`Stack`].
pub(crate) fn symbolize(raw: &[usize]) -> Stack {
    let mut frames = Vec::new();
    // A walk ends on the null return address of a thread's first frame,
    // which names nothing.
    for &ip in raw.iter().filter(|&&ip| ip != 0) {
        // `resolve` looks up the call instruction of a return address.
        backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
            frames.push(Resolved {
                name: symbol
                    .name()
                    .map_or_else(|| format!("{ip:#x}"), |name| format!("{name:#}")),
                file: symbol.filename().map(Path::to_path_buf),
                line: symbol.lineno(),
            });
        });
    }
    trim(frames)
}

/// A symbolized frame (inlined calls are frames of their own).
#[derive(Debug)]
struct Resolved {
    name: String,
    file: Option<PathBuf>,
    line: Option<u32>,
}

/// The library crates a stuck poll passes through on its way to the user's
/// code; any other crate is the user's.
const LIBRARY_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "backtrace",
    "lanes",
    "tokio",
    "hyper",
    "hyper_util",
    "axum",
    "axum_core",
    "tower",
    "tower_http",
    "tower_layer",
    "tower_service",
    "futures",
    "futures_util",
    "futures_core",
    "tracing",
    "tracing_core",
    "tracing_futures",
    "http",
    "http_body",
    "http_body_util",
    "pin_project_lite",
];

/// Most user frames a stack keeps.
const MOST_FRAMES: usize = 8;

impl Resolved {
    fn is_library(&self) -> bool {
        // `<showcase::Feed as futures_core::Stream>::poll_next` is the
        // user's; `<F as core::future::Future>::poll` is not.
        let name = self.name.trim_start_matches('<');
        let by_name = match name.split_once("::") {
            Some((krate, _)) => LIBRARY_CRATES.contains(&krate) || krate.contains([' ', '<']),
            // A C function (`clock_nanosleep`), whatever its debug info
            // says of its file, or a bare address.
            None => true,
        };
        by_name || self.file.as_deref().is_some_and(is_library_file)
    }

    /// The name without async-block and closure markers, which the file and
    /// line already place, nor glibc's internal prefix.
    fn function(&self) -> String {
        let name = self.name.strip_prefix("__GI___").unwrap_or(&self.name);
        name.replace("::{{closure}}", "")
    }

    /// A frame of the signal handler, or of the trampoline the kernel
    /// returns through, which an unsymbolized libc leaves as an address.
    fn is_the_handlers(&self) -> bool {
        self.name.contains("__restore_rt")
            || self.name.starts_with("lanes::stack::")
            || self.name.starts_with("backtrace::")
    }

    fn frame(&self) -> Frame {
        Frame {
            function: self.function(),
            file: self.file.as_deref().map(display_path),
            line: self.line,
        }
    }
}

fn trim(frames: Vec<Resolved>) -> Stack {
    // Everything up to the signal trampoline is the handler's own.
    let mut interrupted = frames
        .iter()
        .rposition(Resolved::is_the_handlers)
        .map_or(0, |handler| handler + 1);
    if frames
        .get(interrupted)
        .is_some_and(|frame| frame.name.starts_with("0x"))
    {
        interrupted += 1;
    }
    let frames = &frames[interrupted.min(frames.len())..];
    let Some(innermost_user) = frames.iter().position(|frame| !frame.is_library()) else {
        return Stack {
            frames: frames
                .iter()
                .take(MOST_FRAMES)
                .map(Resolved::frame)
                .collect(),
            blocking_call: None,
        };
    };
    let blocking_call = innermost_user
        .checked_sub(1)
        .map(|outermost_library| frames[outermost_library].function());
    let mut user: Vec<Frame> = frames[innermost_user..]
        .iter()
        .filter(|frame| !frame.is_library())
        .take(MOST_FRAMES)
        .map(Resolved::frame)
        .collect();
    // An async fn shows as its future's frame and its body's: the
    // innermost, with the line inside it, is kept.
    user.dedup_by(|outer, inner| outer.function == inner.function);
    user.reverse();
    Stack {
        frames: user,
        blocking_call,
    }
}

/// The standard library, crates from a registry or git, and `lanes`
/// itself (a path dependency in its own workspace).
fn is_library_file(file: &Path) -> bool {
    let text = file.to_string_lossy();
    if text.starts_with("/rustc/")
        || text.contains("/.cargo/registry/")
        || text.contains("/.cargo/git/")
    {
        return true;
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    if file.is_absolute() {
        return file.starts_with(package.join("src"));
    }
    // Relative to the workspace root, as rustc records a workspace member's
    // files: `runtime/src/poll.rs`.
    package
        .file_name()
        .is_some_and(|name| file.starts_with(Path::new(name).join("src")))
}

fn display_path(file: &Path) -> String {
    static WORKING_DIR: LazyLock<Option<PathBuf>> = LazyLock::new(|| std::env::current_dir().ok());
    let relative = WORKING_DIR
        .as_deref()
        .and_then(|dir| file.strip_prefix(dir).ok())
        .unwrap_or(file);
    relative.display().to_string()
}

#[cfg(target_os = "linux")]
pub(crate) use linux::capture;

#[cfg(not(target_os = "linux"))]
pub(crate) fn capture(_: &crate::watchdog::PollSlot, _: u64) -> Result<RawFrames, NoStack> {
    Err(NoStack::Unsupported)
}

#[cfg(target_os = "linux")]
mod linux {
    //! One capture at a time (only the watchdog thread asks), through
    //! statics the handler reads and writes with atomics alone.

    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::{NoStack, RawFrames};
    use crate::watchdog::PollSlot;

    /// SIGURG is ignored by default, so a stray one kills nothing, and
    /// tokio and std leave it alone.
    const SIGNAL: libc::c_int = libc::SIGURG;
    const MOST_RAW_FRAMES: usize = 256;
    /// How long the watchdog waits for the stuck thread to start answering,
    /// and then to finish.
    const ANSWER_WITHIN: Duration = Duration::from_millis(100);
    const FINISH_WITHIN: Duration = Duration::from_secs(1);

    /// Set when a handler started and never finished (it would have to be
    /// stuck in the unwinder, e.g. on the dynamic loader's lock): its
    /// buffer may still be written, so no capture uses it again.
    static ABANDONED: AtomicBool = AtomicBool::new(false);

    const IDLE: u8 = 0;
    const ASKED: u8 = 1;
    const WRITING: u8 = 2;
    const DONE: u8 = 3;
    const STALE: u8 = 4;

    struct Request {
        state: AtomicU8,
        /// The slot of the thread asked, and the poll it must still be in.
        slot: AtomicPtr<PollSlot>,
        began: AtomicU64,
        len: AtomicUsize,
        frames: [AtomicUsize; MOST_RAW_FRAMES],
    }

    static REQUEST: Request = Request {
        state: AtomicU8::new(IDLE),
        slot: AtomicPtr::new(std::ptr::null_mut()),
        began: AtomicU64::new(0),
        len: AtomicUsize::new(0),
        frames: [const { AtomicUsize::new(0) }; MOST_RAW_FRAMES],
    };

    /// The handler that was installed before ours, for signals not ours;
    /// `None` inside if ours could not be installed.
    static PREVIOUS: OnceLock<Option<libc::sigaction>> = OnceLock::new();

    fn install() -> Option<libc::sigaction> {
        // SAFETY: a zeroed `sigaction` is valid; the handler only touches
        // atomics, the caller's frames and errno.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(SIGNAL, &action, &mut previous) != 0 {
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    "lanes: could not install the SIGURG handler for stack capture; watchdog reports will have no stack"
                );
                return None;
            }
            Some(previous)
        }
    }

    /// The thread id `gettid` gives, taken by each slot for the handler to
    /// check that the signal reached the thread asked.
    pub(crate) fn this_thread() -> (libc::pthread_t, libc::pid_t) {
        // SAFETY: both only read the calling thread's identity.
        unsafe { (libc::pthread_self(), libc::gettid()) }
    }

    extern "C" fn on_signal(
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) {
        // SAFETY: errno is the calling thread's; the unwinder may set it.
        let errno = unsafe { *libc::__errno_location() };
        if !answer() {
            chain(signal, info, context);
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    /// Records this thread's frames if the request is for it; false if the
    /// signal was not ours.
    fn answer() -> bool {
        let slot = REQUEST.slot.load(Ordering::Acquire);
        // SAFETY: the watchdog keeps the slot alive while it asks.
        let Some(slot) = (unsafe { slot.as_ref() }) else {
            return false;
        };
        // SAFETY: `gettid` is async-signal-safe.
        if slot.tid != unsafe { libc::gettid() } {
            return false;
        }
        if REQUEST
            .state
            .compare_exchange(ASKED, WRITING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        if slot.began.load(Ordering::Acquire) != REQUEST.began.load(Ordering::Acquire) {
            REQUEST.state.store(STALE, Ordering::Release);
            return true;
        }
        let mut len = 0;
        // SAFETY: the handler interrupted this thread, so nothing else on
        // it unwinds now; the closure only stores into atomics.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                REQUEST.frames[len].store(frame.ip() as usize, Ordering::Relaxed);
                len += 1;
                len < MOST_RAW_FRAMES
            });
        }
        REQUEST.len.store(len, Ordering::Relaxed);
        REQUEST.state.store(DONE, Ordering::Release);
        true
    }

    fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
        let Some(previous) = PREVIOUS.get().copied().flatten() else {
            return;
        };
        let handler = previous.sa_sigaction;
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            return;
        }
        // SAFETY: the previous handler was installed for this signal, with
        // the signature its flags declare.
        unsafe {
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                handler(signal, info, context);
            } else {
                let handler: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                handler(signal);
            }
        }
    }

    /// Asks the thread of `slot`, stuck in the poll that began at `began`,
    /// for its frames, and waits for them.
    pub(crate) fn capture(slot: &PollSlot, began: u64) -> Result<RawFrames, NoStack> {
        if PREVIOUS.get_or_init(install).is_none() {
            return Err(NoStack::NoHandler);
        }
        if ABANDONED.load(Ordering::Acquire) {
            return Err(NoStack::NoAnswer);
        }
        REQUEST.began.store(began, Ordering::Release);
        REQUEST
            .slot
            .store(slot as *const PollSlot as *mut PollSlot, Ordering::Release);
        REQUEST.state.store(ASKED, Ordering::Release);
        // SAFETY: the thread is alive: the caller holds the slot list's
        // lock, which a thread's slot takes to say it is gone.
        let sent = unsafe { libc::pthread_kill(slot.pthread, SIGNAL) } == 0;
        if sent {
            wait_for_answer();
        }
        let state = REQUEST.state.load(Ordering::Acquire);
        if state == WRITING {
            // The state stays `WRITING`, so no later signal is taken for a
            // request; the slot is let go.
            REQUEST.slot.store(std::ptr::null_mut(), Ordering::Release);
            ABANDONED.store(true, Ordering::Release);
            tracing::warn!(
                "lanes: a stuck thread started recording its stack and did not finish within 1 s; stack capture is off for the rest of this process"
            );
            return Err(NoStack::NoAnswer);
        }
        let outcome = match state {
            DONE => {
                let len = REQUEST.len.load(Ordering::Relaxed);
                Ok(REQUEST.frames[..len]
                    .iter()
                    .map(|frame| frame.load(Ordering::Relaxed))
                    .collect())
            }
            STALE => Err(NoStack::PollEnded),
            _ => Err(NoStack::NoAnswer),
        };
        REQUEST.slot.store(std::ptr::null_mut(), Ordering::Release);
        REQUEST.state.store(IDLE, Ordering::Release);
        outcome
    }

    /// Returns once the handler has finished, when it has not started
    /// within [`ANSWER_WITHIN`] (the request is then withdrawn), or when it
    /// started and has not finished within [`FINISH_WITHIN`].
    fn wait_for_answer() {
        let asked = Instant::now();
        let deadline = asked + ANSWER_WITHIN;
        loop {
            match REQUEST.state.load(Ordering::Acquire) {
                DONE | STALE => return,
                WRITING if asked.elapsed() >= FINISH_WITHIN => return,
                // Started: it finishes soon, and its frames are wanted.
                WRITING => std::thread::yield_now(),
                _ if Instant::now() >= deadline => {
                    if REQUEST
                        .state
                        .compare_exchange(ASKED, IDLE, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return;
                    }
                }
                _ => std::thread::sleep(Duration::from_micros(50)),
            }
        }
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::this_thread;

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(name: &str, file: &str, line: u32) -> Resolved {
        Resolved {
            name: name.to_owned(),
            file: (!file.is_empty()).then(|| PathBuf::from(file)),
            line: (line != 0).then_some(line),
        }
    }

    #[test]
    fn keeps_the_user_frames_and_the_call_that_blocks() {
        let stack = trim(vec![
            resolved("lanes::stack::linux::on_signal", "/src/lanes/stack.rs", 1),
            resolved("0x7f0000001000", "", 0),
            resolved(
                "__GI___clock_nanosleep",
                "./time/../sysdeps/unix/sysv/linux/clock_nanosleep.c",
                48,
            ),
            resolved(
                "std::sys::pal::unix::thread::Thread::sleep",
                "/rustc/abc/library/std/src/sys/pal/unix/thread.rs",
                300,
            ),
            resolved(
                "std::thread::sleep",
                "/rustc/abc/library/std/src/thread/mod.rs",
                900,
            ),
            resolved("showcase::vendor::fetch_rates", "/app/src/vendor.rs", 12),
            resolved("showcase::rates::{{closure}}", "/app/src/main.rs", 40),
            resolved("showcase::rates", "/app/src/main.rs", 38),
            resolved(
                "<F as core::future::future::Future>::poll",
                "/rustc/abc/library/core/src/future/future.rs",
                120,
            ),
            resolved(
                "axum::routing::route::RouteFuture::poll",
                "/home/u/.cargo/registry/src/axum/route.rs",
                200,
            ),
            resolved("tokio::runtime::task::raw::poll", "", 0),
            resolved("start_thread", "./nptl/pthread_create.c", 442),
        ]);
        assert_eq!(
            stack.to_string(),
            "showcase::rates (/app/src/main.rs:40) → showcase::vendor::fetch_rates (/app/src/vendor.rs:12) → std::thread::sleep"
        );
    }

    #[test]
    fn files_tell_the_users_code_from_libraries() {
        for (file, library) in [
            ("/rustc/abc/library/std/src/thread/mod.rs", true),
            (
                "/home/u/.cargo/registry/src/index/axum-0.8.0/src/routing.rs",
                true,
            ),
            (concat!(env!("CARGO_MANIFEST_DIR"), "/src/poll.rs"), true),
            ("runtime/src/lane/blocking.rs", true),
            ("src/main.rs", false),
            ("examples/vendor-sdk/src/lib.rs", false),
            ("/app/src/handlers.rs", false),
        ] {
            assert_eq!(is_library_file(Path::new(file)), library, "{file}");
        }
    }

    #[test]
    fn a_stack_in_library_code_only_keeps_its_innermost_frames() {
        let stack = trim(vec![
            resolved("__restore_rt", "", 0),
            resolved("read", "", 0),
            resolved("std::fs::read", "/rustc/abc/library/std/src/fs.rs", 10),
        ]);
        assert_eq!(stack.blocking_call, None);
        assert_eq!(
            stack.to_string(),
            "read → std::fs::read (/rustc/abc/library/std/src/fs.rs:10)"
        );
    }
}
