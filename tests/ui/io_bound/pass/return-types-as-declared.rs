//! The timed body keeps the fn's declared return type: early `return`s and
//! `?` coerce as they would in a plain `async fn`; borrowed arguments,
//! methods and `impl Trait` returns work too.
use std::error::Error;
use std::fmt;

#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused")
    }
}

impl Error for Refused {}

#[lanes::io_bound]
async fn parse(text: String, refuse: bool) -> Result<u32, Box<dyn Error>> {
    if refuse {
        return Err(Box::new(Refused));
    }
    let n: u32 = text.parse()?;
    Ok(n)
}

#[lanes::io_bound]
async fn or_default(text: &str) -> &str {
    if text.is_empty() {
        return "default";
    }
    text
}

#[lanes::io_bound]
async fn shown() -> impl fmt::Display {
    42
}

#[lanes::io_bound]
async fn nothing() {
    if true {
        return;
    }
}

struct Counter(u32);

impl Counter {
    #[lanes::io_bound]
    async fn get(&self) -> u32 {
        self.0
    }
}

#[tokio::main]
async fn main() {
    assert_eq!(parse("5".into(), false).await.unwrap(), 5);
    assert_eq!(parse("5".into(), true).await.unwrap_err().to_string(), "refused");
    assert!(parse("x".into(), false).await.is_err());
    assert_eq!(or_default("").await, "default");
    assert_eq!(shown().await.to_string(), "42");
    nothing().await;
    assert_eq!(Counter(3).get().await, 3);
}
