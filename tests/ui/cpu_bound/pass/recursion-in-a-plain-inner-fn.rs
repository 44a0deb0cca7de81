//! Recursion through a plain inner fn is the fix, and names that only
//! look like the fn are not calls to it: a nested fn of the same name, a
//! local or closure argument of that name, other fns' `Self`, and methods
//! on values other than `self`.

#[lanes::cpu_bound]
fn fib(n: u32) -> u64 {
    fn fib(n: u32) -> u64 {
        if n < 2 { n.into() } else { fib(n - 1) + fib(n - 2) }
    }
    fib(n)
}

#[lanes::cpu_bound]
fn fib_inner_call(n: u32) -> u64 {
    fn fib_inner(n: u32) -> u64 {
        if n < 2 { n.into() } else { fib_inner(n - 1) + fib_inner(n - 2) }
    }
    fib_inner(n)
}

#[lanes::cpu_bound]
fn square(n: u64) -> u64 {
    let twice = {
        let square = |x: u64| x * x;
        square(n)
    };
    let halve = |square: fn(u64) -> u64| square(n) / 2;
    twice + halve(|x| x)
}

#[lanes::cpu_bound]
fn shadowed_by_a_use(text: String) -> usize {
    use std::mem::take as shadowed_by_a_use;
    let mut text = text;
    shadowed_by_a_use(&mut text).len()
}

struct Counter(u64);

impl Counter {
    fn bump(&self) -> u64 {
        self.0 + 1
    }

    #[lanes::cpu_bound]
    fn total(self, others: Vec<Counter>) -> u64 {
        struct Inner;
        impl Inner {
            fn total() -> u64 {
                0
            }
        }
        fn total(others: &[Counter]) -> u64 {
            others.iter().map(|other| other.0).sum()
        }
        let other_totals = others.iter().map(Counter::bump).sum::<u64>();
        self.0 + total(&others) + other_totals + Inner::total()
    }
}

#[tokio::main]
async fn main() {
    assert_eq!(fib(20).await, 6765);
    assert_eq!(fib_inner_call(20).await, 6765);
    assert_eq!(square(4).await, 16 + 2);
    assert_eq!(shadowed_by_a_use("ab".to_owned()).await, 2);
    assert_eq!(Counter(1).total(vec![Counter(2)]).await, 1 + 2 + 3);
}
