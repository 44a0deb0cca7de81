use lanes::background;

#[background]
fn index(title: &str, tags: Vec<&'static str>) {
    let _ = (title, tags);
}

#[background]
async fn notify<'a>(to: std::borrow::Cow<'a, str>) {
    let _ = to;
}

fn main() {}
