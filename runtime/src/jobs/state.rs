//! The values `State<T>` arguments of `#[background]` fns are given: one
//! per type, registered once with [`WorkerConfig::state`], cloned into each
//! job that takes it. A job's stored payload never holds them.
//!
//! [`WorkerConfig::state`]: super::WorkerConfig::state

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use super::kind::{JobKind, NotStarted};
use super::worker::Failure;
use super::{JobContext, StoreError};

/// A type a `#[background]` fn takes as `State<T>`: the workers keep one
/// value of it and give each job a clone, on whichever thread runs it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the `State` of a #[background] fn: the workers keep one value of it and give each job a clone, on any thread",
    label = "needs `Clone + Send + Sync + 'static`",
    note = "share what cannot be cloned through an `Arc`, and what is not `Sync` behind a `Mutex`; the workers are given the value once, with `WorkerConfig::default().state(..)`"
)]
pub trait WorkerState: Clone + Send + Sync + 'static {}

impl<T: Clone + Send + Sync + 'static> WorkerState for T {}

/// One type a job kind takes as `State<T>`, as its [`JobKind`] lists it.
#[derive(Clone, Copy, Debug)]
pub struct StateType {
    id: fn() -> TypeId,
    name: fn() -> &'static str,
}

/// The `State<T>` argument of one `#[background]` fn: made once, in a
/// `const` the macro spans at `T`, so that a type the workers cannot keep
/// is reported there once; the kind lists its [`StateType`], and the run
/// takes the value with it.
pub struct StateArgument<T> {
    get: fn(&States) -> Option<T>,
    state: StateType,
}

/// The `State<T>` argument of type `T`.
pub const fn state_argument<T: WorkerState>() -> StateArgument<T> {
    StateArgument {
        get: States::get::<T>,
        state: StateType {
            id: TypeId::of::<T>,
            name: std::any::type_name::<T>,
        },
    }
}

impl<T> StateArgument<T> {
    /// The type, as the kind lists it for the workers' start-up check.
    pub const fn state_type(&self) -> StateType {
        self.state
    }
}

impl<T> fmt::Debug for StateArgument<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StateArgument")
            .field(&(self.state.name)())
            .finish()
    }
}

/// The states the workers were given, by type. Cloning shares them.
#[derive(Clone, Default)]
pub(crate) struct States(Arc<HashMap<TypeId, Registered>>);

#[derive(Clone)]
struct Registered {
    name: &'static str,
    value: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.values().map(|registered| registered.name))
            .finish()
    }
}

impl States {
    /// Keeps `value` for the jobs that take `State<T>`, in place of an
    /// earlier value of the same type.
    pub(crate) fn insert<T: WorkerState>(&mut self, value: T) {
        let registered = Registered {
            name: std::any::type_name::<T>(),
            value: Arc::new(value),
        };
        Arc::make_mut(&mut self.0).insert(TypeId::of::<T>(), registered);
    }

    fn get<T: WorkerState>(&self) -> Option<T> {
        self.0
            .get(&TypeId::of::<T>())?
            .value
            .downcast_ref()
            .cloned()
    }

    fn contains(&self, state: StateType) -> bool {
        self.0.contains_key(&(state.id)())
    }

    /// Checks that every kind the workers can claim (its queue is one of
    /// `queues`) has each state it takes, so that a missing one stops the
    /// start rather than failing each job.
    pub(crate) fn check<'k>(
        &self,
        kinds: impl IntoIterator<Item = &'k JobKind>,
        queues: &[String],
    ) -> Result<(), StartError> {
        // By type name, so the error is the same at every start.
        let mut missing: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
        for kind in kinds {
            if !kind.taken_by(queues) {
                continue;
            }
            for &state in kind.states {
                if !self.contains(state) {
                    missing.entry((state.name)()).or_default().insert(kind.name);
                }
            }
        }
        match missing.into_iter().next() {
            None => Ok(()),
            Some((state, kinds)) => Err(StartError::MissingState {
                state,
                kinds: kinds.into_iter().collect(),
            }),
        }
    }
}

/// The value of a job's `State<T>` argument, cloned from the workers'.
/// The workers' start-up check makes it present for every kind they claim;
/// a job enqueued by hand into another queue may still meet a worker
/// without it, and then fails (and is retried) naming the fix.
pub fn job_state<T>(context: &JobContext, argument: StateArgument<T>) -> Result<T, NotStarted> {
    (argument.get)(&context.states).ok_or_else(|| {
        NotStarted(Failure::Error(format!(
            "this worker has no `{}` for the job's `State` argument; give it to the workers \
             with `WorkerConfig::default().state(..)`",
            (argument.state.name)()
        )))
    })
}

/// Why workers did not start.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The job store could not be opened.
    Store(StoreError),
    /// Job kinds the workers would claim take `State<T>` of a type they
    /// were not given (of several such types, the first by name).
    MissingState {
        /// The type, as [`std::any::type_name`] spells it.
        state: &'static str,
        /// The kinds that take it.
        kinds: Vec<&'static str>,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Store(error) => write!(f, "the workers did not start: {error}"),
            StartError::MissingState { state, kinds } => {
                let plural = kinds.len() > 1;
                let kinds = kinds
                    .iter()
                    .map(|kind| format!("`{kind}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                write!(
                    f,
                    "the workers did not start: the job kind{} {kinds} take{} `State<{state}>`, \
                     but the workers were given no `{state}`; give it to them with \
                     `WorkerConfig::default().state(..)`",
                    if plural { "s" } else { "" },
                    if plural { "" } else { "s" },
                )
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Store(error) => Some(error),
            StartError::MissingState { .. } => None,
        }
    }
}

impl From<StoreError> for StartError {
    fn from(error: StoreError) -> StartError {
        StartError::Store(error)
    }
}
