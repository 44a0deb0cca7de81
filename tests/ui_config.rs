//! Project rules from `lanes.toml`: `ui/config/lanes.toml` adds a blocking
//! path and a blocking method, and allows a built-in.
//!
//! A binary of its own, because the file is found through the environment
//! (`LANES_CONF_DIR`), which trybuild's cargo inherits.

#[rustversion::attr(not(stable), ignore)]
#[test]
fn project_rules_from_lanes_toml() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/config");
    // SAFETY: this is the only test in this binary, so no other thread reads
    // or writes the environment while it is changed.
    unsafe { std::env::set_var(lanes_check::DIR_ENV, dir) };
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/config/fail/*.rs");
    t.pass("ui/config/pass/*.rs");
}
