#[lanes::cpu_bound]
extern "C" fn answer() -> u32 {
    42
}

fn main() {}
