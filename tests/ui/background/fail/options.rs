use lanes::background;

#[background(queue = "", retries = "3", timeout = "30", limit = 2)]
async fn one() {}

#[background(queue = "emails", queue = "sms", timeout = "0s", kind)]
async fn two() {}

#[background(timeout = 30, retries = -1, kind = "a b")]
fn three() {}

fn main() {}
