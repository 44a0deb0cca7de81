// A #[cpu_bound] fn becomes async, so a call to itself in its body would be
// a future; each such call is refused where it is written, with the fix,
// and nothing else is reported (the caller's `.await` compiles).

#[lanes::cpu_bound]
fn fib(n: u32) -> u64 {
    if n < 2 { n.into() } else { fib(n - 1) + fib(n - 2) }
}

struct Tree(Vec<Tree>);

impl Tree {
    #[lanes::cpu_bound]
    fn count(tree: Tree) -> usize {
        1 + tree.0.into_iter().map(|child| Self::count(child)).sum::<usize>()
    }

    #[lanes::cpu_bound]
    fn leaves(self) -> usize {
        println!("{} children", self.0.len());
        match self.0.len() {
            0 => 1,
            _ => self.leaves(),
        }
    }
}

#[lanes::cpu_bound]
fn collatz(n: u64) -> u32 {
    let steps = if n == 1 { 0 } else { 1 + collatz(if n % 2 == 0 { n / 2 } else { 3 * n + 1 }) };
    assert!(steps < 1_000, "{} ran away", collatz(n));
    steps
}

#[tokio::main]
async fn main() {
    let _: u64 = fib(30).await;
    let _: usize = Tree::count(Tree(Vec::new())).await;
    let _: u32 = collatz(27).await;
}
