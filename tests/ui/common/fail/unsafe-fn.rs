#[lanes::blocking]
unsafe fn read_raw(addr: usize) -> u8 {
    unsafe { *(addr as *const u8) }
}

fn main() {}
