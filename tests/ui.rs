//! Compile-time behaviour: what each lane refuses, with which words and
//! where, and what it accepts. Gated on stable, since rustc's own wording
//! drifts between channels; re-bless with `TRYBUILD=overwrite` and read the
//! diff.

#[rustversion::attr(not(stable), ignore)]
#[test]
fn common() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/common/fail/*.rs");
    t.pass("ui/common/pass/*.rs");
}

#[rustversion::attr(not(stable), ignore)]
#[test]
fn io_bound() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/io_bound/fail/*.rs");
    t.pass("ui/io_bound/pass/*.rs");
}

#[rustversion::attr(not(stable), ignore)]
#[test]
fn blocking() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/blocking/fail/*.rs");
    t.pass("ui/blocking/pass/*.rs");
}

#[rustversion::attr(not(stable), ignore)]
#[test]
fn cpu_bound() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/cpu_bound/fail/*.rs");
    t.pass("ui/cpu_bound/pass/*.rs");
}

#[rustversion::attr(not(stable), ignore)]
#[test]
fn background() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/background/fail/*.rs");
    t.pass("ui/background/pass/*.rs");
}
