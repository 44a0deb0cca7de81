use std::rc::Rc;

#[lanes::blocking]
fn count(names: Rc<Vec<String>>) -> usize {
    names.len()
}

fn main() {}
