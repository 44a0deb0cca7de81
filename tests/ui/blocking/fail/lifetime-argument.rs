use std::borrow::Cow;

#[lanes::blocking]
fn normalise<'a>(text: Cow<'a, str>) -> String {
    text.into_owned()
}

fn main() {}
