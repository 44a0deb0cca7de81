use std::rc::Rc;

#[lanes::blocking]
fn names() -> Rc<Vec<String>> {
    Rc::new(Vec::new())
}

fn main() {}
