use lanes::background;
use lanes::jobs::JobContext;

#[background]
async fn export<T: serde::Serialize>(rows: Vec<T>) {
    let _ = rows;
}

struct Mailer;

impl Mailer {
    #[background]
    fn send(self, to: String) {
        let _ = to;
    }
}

#[background]
async fn twice(first: JobContext, second: JobContext) {
    let _ = (first, second);
}

fn main() {}
