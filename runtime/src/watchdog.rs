//! The blocked-worker watchdog: every thread that polls a watched future
//! (an `#[io_bound]` fn, a route under [`Watch`](crate::Watch), a strict
//! test) publishes, in a [`PollSlot`], when its current poll began and of
//! what; a watchdog thread reads the slots and reports a poll that has held
//! its worker past the threshold while it is still stuck, with the stack of
//! the call that blocks.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak, mpsc};
use std::thread::Thread;
use std::time::Duration;

use crate::clock::CLOCK;
use crate::lane::Site;
use crate::stack::{self, NoStack, Stack};

static SLOTS: Mutex<Vec<Weak<PollSlot>>> = Mutex::new(Vec::new());

/// The service's watchdog threshold in nanoseconds; 0 while it is off.
static THRESHOLD_NANOS: AtomicU64 = AtomicU64::new(0);
/// Strict scopes running now: while there are any, the watchdog looks every
/// millisecond.
static STRICT_SCOPES: AtomicUsize = AtomicUsize::new(0);
static WATCHDOG: OnceLock<Option<Thread>> = OnceLock::new();

/// What one thread is polling now.
#[derive(Debug)]
pub(crate) struct PollSlot {
    /// The [`CLOCK`] reading when the outermost watched poll on this thread
    /// began; 0 while no such poll runs.
    pub(crate) began: AtomicU64,
    /// The innermost site being polled; null in a strict scope alone.
    pub(crate) site: AtomicPtr<Site>,
    /// The outermost site being polled (a route around an `#[io_bound]`
    /// fn), which is told of its stuck polls too.
    pub(crate) outermost_site: AtomicPtr<Site>,
    /// A strict scope's threshold for the poll now running, in nanoseconds;
    /// 0 outside one.
    pub(crate) strict_nanos: AtomicU64,
    /// The `began` already reported, written by the watchdog only.
    reported: AtomicU64,
    /// The `began` whose stack the watchdog is taking now; 0 when none.
    capturing: AtomicU64,
    /// The last stack taken in a strict scope, with its `began`.
    strict_capture: Mutex<Option<(u64, Result<Stack, NoStack>)>>,
    /// Set, under the slot list's lock, when the thread ends: it can no
    /// longer be signalled.
    gone: AtomicBool,
    thread: String,
    #[cfg(target_os = "linux")]
    pub(crate) pthread: libc::pthread_t,
    #[cfg(target_os = "linux")]
    pub(crate) tid: libc::pid_t,
}

/// The calling thread's slot, owned by a thread-local: watched until the
/// thread ends.
#[derive(Debug)]
pub(crate) struct ThreadSlot(pub(crate) Arc<PollSlot>);

impl ThreadSlot {
    pub(crate) fn for_this_thread() -> ThreadSlot {
        #[cfg(target_os = "linux")]
        let (pthread, tid) = stack::this_thread();
        let slot = Arc::new(PollSlot {
            began: AtomicU64::new(0),
            site: AtomicPtr::new(std::ptr::null_mut()),
            outermost_site: AtomicPtr::new(std::ptr::null_mut()),
            strict_nanos: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            capturing: AtomicU64::new(0),
            strict_capture: Mutex::new(None),
            gone: AtomicBool::new(false),
            thread: std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned(),
            #[cfg(target_os = "linux")]
            pthread,
            #[cfg(target_os = "linux")]
            tid,
        });
        lock_slots().push(Arc::downgrade(&slot));
        ThreadSlot(slot)
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // Under the lock: the watchdog signals a thread only while holding
        // it, so it never signals one that has ended.
        let _slots = lock_slots();
        self.0.gone.store(true, Ordering::Release);
    }
}

fn lock_slots() -> std::sync::MutexGuard<'static, Vec<Weak<PollSlot>>> {
    SLOTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the watchdog with the service's threshold; false if its thread
/// could not start.
pub(crate) fn start(threshold: Duration) -> bool {
    THRESHOLD_NANOS.store(nanos(threshold), Ordering::Relaxed);
    ensure_started()
}

fn ensure_started() -> bool {
    WATCHDOG
        .get_or_init(|| {
            std::sync::LazyLock::force(&CLOCK);
            let spawned = std::thread::Builder::new()
                .name("lanes-watchdog".into())
                .spawn(watch);
            match spawned {
                Ok(handle) => Some(handle.thread().clone()),
                Err(error) => {
                    tracing::warn!(%error, "lanes: could not start the watchdog thread");
                    None
                }
            }
        })
        .is_some()
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A strict scope: while it lives, the watchdog runs and looks every
/// millisecond.
#[derive(Debug)]
pub(crate) struct StrictScope(());

impl StrictScope {
    /// None if the watchdog thread could not start.
    pub(crate) fn enter() -> Option<StrictScope> {
        if !ensure_started() {
            return None;
        }
        STRICT_SCOPES.fetch_add(1, Ordering::AcqRel);
        if let Some(Some(watchdog)) = WATCHDOG.get() {
            watchdog.unpark();
        }
        Some(StrictScope(()))
    }
}

impl Drop for StrictScope {
    fn drop(&mut self) {
        STRICT_SCOPES.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PollSlot {
    /// The stack taken of the strict poll that began at `began`, waiting
    /// for a capture still under way.
    pub(crate) fn strict_stack(&self, began: u64) -> Result<Stack, NoStack> {
        while self.capturing.load(Ordering::Acquire) == began {
            std::thread::sleep(Duration::from_micros(100));
        }
        match &*self
            .strict_capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            Some((taken, stack)) if *taken == began => stack.clone(),
            _ => Err(NoStack::PollEnded),
        }
    }
}

fn watch() {
    loop {
        let threshold = THRESHOLD_NANOS.load(Ordering::Relaxed);
        let every = if STRICT_SCOPES.load(Ordering::Acquire) > 0 {
            Duration::from_millis(1)
        } else if threshold == 0 {
            Duration::from_secs(1)
        } else {
            (Duration::from_nanos(threshold) / 4).max(Duration::from_millis(1))
        };
        std::thread::park_timeout(every);

        // Frames are taken under the slot list's lock, which keeps the
        // stuck threads alive. Symbolizing is left to a thread of its own:
        // the first one reads the binary's debug info, which takes up to a
        // second or so, and the watchdog keeps watching meanwhile.
        for caught in look(threshold) {
            symbolizer().send(caught);
        }
    }
}

/// The thread that symbolizes and reports what the watchdog caught, in
/// order; at most [`SYMBOLIZE_BACKLOG`] wait for it.
struct Symbolizer(Option<mpsc::SyncSender<Caught>>);

const SYMBOLIZE_BACKLOG: usize = 64;

fn symbolizer() -> &'static Symbolizer {
    static SYMBOLIZER: OnceLock<Symbolizer> = OnceLock::new();
    SYMBOLIZER.get_or_init(|| {
        let (sender, caught) = mpsc::sync_channel::<Caught>(SYMBOLIZE_BACKLOG);
        let spawned = std::thread::Builder::new()
            .name("lanes-symbolize".into())
            .spawn(move || caught.into_iter().for_each(Caught::report));
        match spawned {
            Ok(_) => Symbolizer(Some(sender)),
            Err(error) => {
                tracing::warn!(%error, "lanes: could not start the symbolizing thread; watchdog reports will have no stack");
                Symbolizer(None)
            }
        }
    })
}

impl Symbolizer {
    /// Reports `caught` from the symbolizing thread; at once, with no
    /// stack, when there is no such thread or it is too far behind.
    fn send(&self, caught: Caught) {
        let unsent = match &self.0 {
            Some(sender) => match sender.try_send(caught) {
                Ok(()) => return,
                Err(
                    mpsc::TrySendError::Full(caught) | mpsc::TrySendError::Disconnected(caught),
                ) => caught,
            },
            None => caught,
        };
        Caught {
            frames: Err(NoStack::Backlog),
            ..unsent
        }
        .report();
    }
}

/// A poll caught stuck, with the raw frames taken of it.
struct Caught {
    slot: Arc<PollSlot>,
    /// The innermost and outermost sites it was polling, read when it was
    /// caught (null in a strict scope alone).
    site: Option<&'static Site>,
    outermost_site: Option<&'static Site>,
    began: u64,
    stuck_for: Duration,
    strict: bool,
    frames: Result<stack::RawFrames, NoStack>,
    /// How long taking the frames took.
    capture: Duration,
}

/// The polls stuck past their threshold and not yet reported, each with
/// its frames.
fn look(threshold: u64) -> Vec<Caught> {
    let now = CLOCK.raw();
    let mut caught = Vec::new();
    lock_slots().retain(|slot| {
        let Some(slot) = slot.upgrade() else {
            return false;
        };
        if slot.gone.load(Ordering::Acquire) {
            return false;
        }
        let began = slot.began.load(Ordering::Acquire);
        if began == 0 || slot.reported.load(Ordering::Relaxed) == began {
            return true;
        }
        let strict = slot.strict_nanos.load(Ordering::Acquire);
        let limit = if strict != 0 { strict } else { threshold };
        let stuck_for = CLOCK.delta(began, now);
        if limit != 0 && stuck_for >= Duration::from_nanos(limit) {
            slot.reported.store(began, Ordering::Relaxed);
            slot.capturing.store(began, Ordering::Release);
            // Read a moment after `began`: a poll that ended in between
            // leaves null, or names the site now polled there (its stack is
            // then refused as stale).
            // SAFETY: only `&'static Site`s are stored in a slot.
            let (site, outermost_site) = unsafe {
                (
                    slot.site.load(Ordering::Acquire).as_ref(),
                    slot.outermost_site.load(Ordering::Acquire).as_ref(),
                )
            };
            let capturing = std::time::Instant::now();
            let frames = stack::capture(&slot, began);
            caught.push(Caught {
                slot,
                site,
                outermost_site,
                began,
                stuck_for,
                strict: strict != 0,
                frames,
                capture: capturing.elapsed(),
            });
        }
        true
    });
    caught
}

impl Caught {
    /// Reports the poll: to the strict scope it runs in, or to the log and
    /// the stuck site's figures.
    fn report(self) {
        let symbolizing = std::time::Instant::now();
        let stack = self.frames.map(|raw| stack::symbolize(&raw));
        let stack_took = self.capture + symbolizing.elapsed();
        let slot = &self.slot;
        if self.strict {
            *slot
                .strict_capture
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((self.began, stack));
            slot.capturing.store(0, Ordering::Release);
            return;
        }
        slot.capturing.store(0, Ordering::Release);
        if let Some(site) = self.site {
            report(
                slot,
                site,
                self.outermost_site,
                self.stuck_for,
                stack,
                stack_took,
            );
        }
    }
}

/// Logs a stuck poll; `stack_took` is what taking and symbolizing its
/// stack cost, for operators who watch the watchdog's own price.
fn report(
    slot: &PollSlot,
    site: &'static Site,
    outermost: Option<&'static Site>,
    stuck_for: Duration,
    stack: Result<Stack, NoStack>,
    stack_took: Duration,
) {
    let threshold = Duration::from_nanos(THRESHOLD_NANOS.load(Ordering::Relaxed));
    let at = match &stack {
        Ok(stack) => stack.to_string(),
        Err(no_stack) => no_stack.to_string(),
    };
    let stack = stack.ok();
    if let Some(outermost) = outermost
        && !std::ptr::eq(outermost, site)
    {
        outermost.record_stuck_poll(stack.clone());
    }
    site.record_stuck_poll(stack);
    tracing::warn!(
        handler = site.name,
        thread = %slot.thread,
        stuck_ms = stuck_for.as_millis() as u64,
        stack_ms = %format_args!("{:.2}", stack_took.as_secs_f64() * 1e3),
        "lanes: `{}` has held tokio worker `{}` in one poll for {} ms and is still running (watchdog threshold {} ms); it is stuck at: {} → {at}. A blocking call runs on the event loop: move it into a #[blocking] or #[cpu_bound] fn",
        site.name,
        slot.thread,
        stuck_for.as_millis(),
        threshold.as_millis(),
        site.name,
    );
}
