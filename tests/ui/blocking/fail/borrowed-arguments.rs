#[lanes::blocking]
fn describe(name: &str, tags: &[String], path: &std::path::Path) -> String {
    format!("{name}{tags:?}{path:?}")
}

fn main() {}
