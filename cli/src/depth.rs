//! How deeply a file nests, measured from its tokens before it is parsed.
//! syn parses nested code by recursion, and so do the visits after it: a
//! file nested deeply enough overflows any stack, and a stack overflow
//! aborts the process instead of failing one file.

use proc_macro2::{Delimiter, Punct, Spacing, TokenStream, TokenTree, token_stream};

/// The deepest nesting the audit parses; a file nested deeper is skipped.
/// Real code stays far below it (the deepest of 7,500 files of crates.io
/// sources measures 89), and the audit thread's stack holds several times
/// it of the costliest shape measured (generic arguments, which overflow it
/// past about 5,000 levels in a debug build).
pub(crate) const LIMIT: usize = 1_000;

/// Keywords that open a nested expression, type or pattern without a
/// delimiter, as `return return x` and `&mut &mut x` do.
const PREFIX_KEYWORDS: &[&str] = &[
    "async", "box", "break", "dyn", "impl", "move", "mut", "ref", "return", "yield",
];

/// The deepest nesting in `text`: delimiters, plus what nests between them
/// ([`Undelimited`]). `None` when the text does not lex; the parser then
/// says why.
#[cfg(test)]
fn nesting(text: &str) -> Option<usize> {
    Some(nesting_of(text.parse().ok()?))
}

/// The deepest nesting of a file's tokens, as [`nesting`] measures it from
/// its text; the audit lexes each file once, for this and for the parser.
pub(crate) fn nesting_of(tokens: TokenStream) -> usize {
    // One level per open group, walked with a stack of our own: a deep file
    // must not overflow this walk either.
    let mut open = vec![Level::new(tokens, 0)];
    let mut deepest = 0;
    while let Some(level) = open.last_mut() {
        let Some(token) = level.tokens.next() else {
            open.pop();
            continue;
        };
        let depth = if let TokenTree::Group(group) = token {
            let inside = level.depth + level.undelimited.depth() + 1;
            level.undelimited.read_group(group.delimiter());
            open.push(Level::new(group.stream(), inside));
            inside
        } else {
            level.undelimited.read(&token);
            level.depth + level.undelimited.depth()
        };
        deepest = deepest.max(depth);
    }
    deepest
}

/// An open group: its remaining tokens and how deep its contents sit.
struct Level {
    tokens: token_stream::IntoIter,
    depth: usize,
    undelimited: Undelimited,
}

impl Level {
    fn new(tokens: TokenStream, depth: usize) -> Level {
        Level {
            tokens: tokens.into_iter(),
            depth,
            undelimited: Undelimited::default(),
        }
    }
}

/// What syn parses by recursion inside one group with no delimiter to show
/// it: runs of prefix operators and keywords (`- - x`, `!!x`, `&&&x`,
/// `&'a &'a T`, `return return x`), generic arguments (`Vec<Vec<u8>>`), and
/// what a nested part follows (`a = b = c`, `fn() -> fn() -> u8`,
/// `|a| |b| c`). Counted loosely, until the statement or the block ends:
/// an `a < b` counts as an open `<`, which costs real code a few levels at
/// most.
#[derive(Default)]
struct Undelimited {
    prefix_run: usize,
    open_angles: usize,
    /// Assignments, return types and closure bodies begun.
    chained: usize,
    /// The last token was an operand, so a `|` there is an operator, not
    /// the start of a closure's parameters.
    after_operand: bool,
    in_closure_parameters: bool,
    /// The punctuation just read, when it is joined to what follows (the
    /// `-` of `->`, the `'` of a lifetime).
    joined: Option<char>,
}

impl Undelimited {
    fn depth(&self) -> usize {
        self.prefix_run + self.open_angles + self.chained
    }

    fn read(&mut self, token: &TokenTree) {
        let after = self.joined.take();
        match token {
            TokenTree::Punct(punct) => {
                self.read_punct(punct, after);
                self.after_operand = false;
            }
            // A lifetime's name, or a keyword that opens what follows.
            TokenTree::Ident(ident)
                if after == Some('\'') || PREFIX_KEYWORDS.iter().any(|k| ident == k) =>
            {
                self.prefix_run += 1;
                self.after_operand = false;
            }
            _ => self.read_operand(),
        }
    }

    fn read_operand(&mut self) {
        self.prefix_run = 0;
        self.after_operand = true;
        self.joined = None;
    }

    /// A group is an operand; a block also ends what came before it (a
    /// statement, a signature), as `;` does.
    fn read_group(&mut self, delimiter: Delimiter) {
        if delimiter == Delimiter::Brace {
            *self = Undelimited::default();
        }
        self.read_operand();
    }

    fn read_punct(&mut self, punct: &Punct, after: Option<char>) {
        match punct.as_char() {
            // A new statement: nothing before it encloses it.
            ';' => return *self = Undelimited::default(),
            // A new element: it is not inside the one before it.
            ',' => {
                self.prefix_run = 0;
                self.chained = 0;
                return;
            }
            '<' => self.open_angles += 1,
            '>' if after == Some('-') => self.chained += 1,
            // Not the `>` of `=>`.
            '>' if after != Some('=') => self.open_angles = self.open_angles.saturating_sub(1),
            '=' if punct.spacing() == Spacing::Alone => self.chained += 1,
            '|' if self.in_closure_parameters => {
                self.in_closure_parameters = false;
                self.chained += 1;
            }
            '|' if !self.after_operand => self.in_closure_parameters = true,
            _ => {}
        }
        self.prefix_run += 1;
        if punct.spacing() == Spacing::Joint || punct.as_char() == '\'' {
            self.joined = Some(punct.as_char());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nesting;

    /// Code nested `n` levels deep, in each shape syn parses by recursion.
    fn shapes(n: usize) -> Vec<String> {
        vec![
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}{}", "{".repeat(n), "}".repeat(n)),
            format!("{}1", "- ".repeat(n)),
            format!("{}1", "&".repeat(n)),
            format!("{}1", "return ".repeat(n)),
            format!("let x: {}u8{} = 1;", "Vec<".repeat(n), ">".repeat(n)),
            format!("a{};", " = a".repeat(n)),
            format!("let x: {}u8 = f;", "fn() -> ".repeat(n)),
            format!("let x = {}1;", "|a| ".repeat(n)),
            format!("let x = {}1;", "move || ".repeat(n)),
            format!("let x: {}u8 = 1;", "&'a ".repeat(n)),
        ]
    }

    #[test]
    fn every_level_of_every_recursive_shape_counts() {
        for (short, long) in shapes(10).into_iter().zip(shapes(20)) {
            let (short_depth, long_depth) = (nesting(&short).unwrap(), nesting(&long).unwrap());
            assert!(long_depth >= short_depth + 10, "{long}: {long_depth}");
        }
    }

    #[test]
    fn ordinary_code_nests_a_few_levels() {
        let code = "fn f(x: &mut Vec<u8>) -> u8 { if x.is_empty() { return 0; } x[0] }\n\
                    fn g() -> bool { 1 < 2 }\nfn h() -> bool { g() || g() }\n\
                    fn i(c: char) -> bool { matches!(c, 'a' | 'b' | 'c' | 'd' | 'e' | 'f') }";
        assert_eq!(nesting(&code.repeat(1_000)), nesting(code));
        assert!(nesting(code).is_some_and(|depth| depth < 10), "{code}");
    }

    #[test]
    fn an_operand_or_a_separator_ends_a_run() {
        assert_eq!(nesting("a - b - c - d"), Some(1));
        assert_eq!(nesting("[- - x, - y]"), Some(3));
    }

    #[test]
    fn text_that_does_not_lex_is_left_to_the_parser() {
        assert_eq!(nesting("fn f() { ("), None);
    }
}
