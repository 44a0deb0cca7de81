//! Not public API: what the `lanes` macros' generated code calls. Nothing here
//! follows semver.

pub use crate::jobs::kind::{
    JobArgument, JobArguments, JobFuture, JobKind, JobOutput, JobPayload, NotStarted,
    attempt as job_attempt, job_argument, run_job,
};
pub use crate::jobs::schedule::Schedule;
pub use crate::jobs::state::{StateArgument, StateType, job_state, state_argument};
pub use crate::jobs::{Enqueue, JobContext};
pub use crate::lane::Site;
pub use crate::lane::blocking::run_blocking;
pub use crate::lane::cpu::run_cpu;
pub use crate::poll::{IoBound, io_bound};
pub use crate::shed::within;
pub use inventory;
pub use serde_json::Value as JsonValue;

/// Spanned at each argument type of a `#[blocking]` or `#[cpu_bound]` fn:
/// rustc names this fn when a type cannot move to a pool thread.
pub fn argument_moves_to_another_thread<T: Send + 'static>() {}
