struct Store;

impl Store {
    #[lanes::blocking]
    fn load(&self) -> Vec<u8> {
        Vec::new()
    }
}

fn main() {}
