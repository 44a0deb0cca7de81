use axum::Json;
use axum::extract::State;
use lanes::background;
use lanes::jobs::JobContext;

#[derive(Clone)]
struct Reports;

#[background(every = "5m", cron = "0 3 * * *")]
async fn two_schedules() {}

#[background(every = "5 parsecs")]
async fn unreadable_period() {}

#[background(every = 300)]
async fn period_not_a_string() {}

#[background(every = "0s")]
async fn zero_period() {}

#[background(every = "1500us")]
async fn period_finer_than_a_millisecond() {}

#[background(cron = "0 3 * *")]
async fn unreadable_cron() {}

#[background(cron = "0 25 * * *")]
fn hour_out_of_range() {}

// The worker's context and states are fine; a stored argument is not,
// even beside an unreadable schedule.
#[background(every = "1h")]
async fn stored_arguments(job: JobContext, State(reports): State<Reports>, day: u32, Json(body): Json<String>) {}

#[background(cron = "every day")]
async fn stored_argument_and_unreadable_cron(day: u32) {}

fn main() {
    let _ = (two_schedules(), unreadable_period(), stored_arguments(State(Reports), 1, Json(String::new())));
}
