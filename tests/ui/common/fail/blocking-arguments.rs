// One fn per malformed argument: each is reported at its own tokens.

#[lanes::blocking(limt = 8)]
fn misspelled() {}

#[lanes::blocking(limit)]
fn without_value() {}

#[lanes::blocking(limit = 2, limit = 3)]
fn twice() {}

#[lanes::blocking(limit = 0)]
fn zero() {}

#[lanes::blocking(limit = "8")]
fn quoted() {}

#[lanes::blocking(limit = 8 +)]
fn malformed() {}

#[lanes::blocking(timeout = "0s")]
fn instant() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
