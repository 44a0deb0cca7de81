//! No input, however malformed, makes the macros panic; a well-formed fn
//! always expands to well-formed items; a fn's calls to itself are found
//! where its name means the fn.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::str::FromStr;

use proc_macro2::{TokenStream, TokenTree};
use proptest::prelude::*;

use crate::{Lane, entry};

const LANES: [Lane; 3] = [Lane::IoBound, Lane::Blocking, Lane::CpuBound];

/// Argument lists, good and bad, tried with every item.
const ARGS: [&str; 7] = [
    "",
    "limit = 4",
    "limit = 0, limit",
    "= =",
    "threads(2)",
    "timeout = \"2s\"",
    "timeout = \"0s\", timeout = 2, limit = 1",
];

/// Expands `item` under every lane and argument list; fails the test on a
/// panic, and when a parseable fn does not come out as parseable items.
fn expand_everywhere(item: &TokenStream) {
    let item_is_fn = syn::parse2::<syn::ItemFn>(item.clone()).is_ok();
    for lane in LANES {
        for args in ARGS {
            let args = TokenStream::from_str(args).expect("argument lists tokenize");
            let expanded =
                catch_unwind(AssertUnwindSafe(|| entry::expand(lane, args, item.clone())))
                    .unwrap_or_else(|_| panic!("{lane:?} panicked on `{item}`"));
            if item_is_fn {
                syn::parse2::<syn::File>(expanded.clone()).unwrap_or_else(|e| {
                    panic!("{lane:?} made bad items ({e}) of `{item}`: `{expanded}`")
                });
            }
        }
    }
}

/// The `.rs` files of the ui suites, which hold every shape the macros meet.
fn corpus() -> Vec<TokenStream> {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
    let mut files = Vec::new();
    let mut dirs = vec![ui];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the ui folder is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a ui case is readable");
                files.push(TokenStream::from_str(&text).expect("a ui case tokenizes"));
            }
        }
    }
    assert!(files.len() >= 40, "found only {} ui cases", files.len());
    files
}

/// The fn items of a file: its `fn` keyword and the tokens up to its body,
/// with any attributes in front.
fn fn_items(file: &TokenStream) -> Vec<Vec<TokenTree>> {
    let tokens: Vec<TokenTree> = file.clone().into_iter().collect();
    let mut items = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(token, TokenTree::Ident(ident) if ident == "fn") {
            continue;
        }
        let start = tokens[..i]
            .iter()
            .rposition(|t| {
                matches!(t, TokenTree::Group(_))
                    || matches!(t, TokenTree::Punct(p) if p.as_char() == ';')
            })
            .map_or(0, |p| p + 1);
        let end = tokens[i..]
            .iter()
            .position(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace))
            .map_or(tokens.len(), |p| i + p + 1);
        items.push(tokens[start..end].to_vec());
    }
    items
}

#[test]
fn every_ui_case_and_every_mutilation_of_its_fns_expands_without_panicking() {
    let mut inputs = 0;
    for file in corpus() {
        expand_everywhere(&file);
        for item in fn_items(&file) {
            for cut in 0..=item.len() {
                expand_everywhere(&item[..cut].iter().cloned().collect());
                inputs += 1;
            }
            for skip in 0..item.len() {
                let without: TokenStream = item
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, t)| t.clone())
                    .collect();
                expand_everywhere(&without);
                inputs += 1;
            }
        }
    }
    assert!(inputs > 500, "the corpus yielded only {inputs} inputs");
}

/// Tokens that make up fn items, so random sequences come close to real ones.
const VOCABULARY: &[&str] = &[
    "fn",
    "async",
    "const",
    "unsafe",
    "extern \"C\"",
    "pub",
    "f",
    "self",
    "&self",
    "&",
    "'a",
    "'static",
    "mut",
    "x",
    ":",
    "u32",
    "String",
    "&str",
    "Rc<u8>",
    "impl Send",
    "->",
    "(",
    ")",
    "{",
    "}",
    "<",
    ">",
    ",",
    ";",
    "=",
    ".await",
    ".lock().unwrap()",
    "let",
    "g",
    "std::thread::sleep(d)",
    "fs::read(p)",
    "drop(g)",
    "#[lanes::allow_blocking]",
    "#[lanes::allow_blocking(\"ok\")]",
    "|| ",
    "async move",
    "x.join()",
    "Command::new(c).output()",
    "where",
    "T",
    "?",
    "return",
    "Self",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(VOCABULARY), 0..40).prop_map(|words| words.join(" "))
}

proptest! {
    #[test]
    fn random_token_sequences_never_panic(head in token_soup(), body in token_soup()) {
        // Unbalanced delimiters do not tokenize, and so never reach a macro.
        for text in [format!("{head} {{ {body} }}"), format!("fn f({head}) {{ {body} }}"), head] {
            if let Ok(item) = TokenStream::from_str(&text) {
                expand_everywhere(&item);
            }
        }
    }
}

#[test]
fn self_calls_are_found_where_the_name_means_the_fn() {
    // Bodies of `fn f(n: u32) -> u32`, or of the item written in full.
    let cases = [
        ("f(n)", 1),
        ("let f = |x| x; f(n)", 0),
        ("let g = f(n); let f = |x| x; f(g)", 1),
        ("let Some(f) = f(n) else { return f(0) }; f(n)", 2),
        ("if let Some(f) = g() { f(n) } else { f(n) }", 1),
        ("match g() { f => f(n), _ => f(n) }", 1),
        ("({ fn f(n: u32) -> u32 { n } f(n) }) + f(n)", 1),
        ("use m::g as f; f(n)", 0),
        ("fn g() -> u32 { f(1) } g()", 0),
        ("(|f: fn(u32) -> u32| f(n))(g) + (|x: u32| f(x))(n)", 1),
        ("for f in fs { f(n); } f(n)", 1),
        ("println!(\"{} {}\", f(n), g(f(n))); vec![f(n); 2]; 0", 2),
        ("fn f(self) { self.f() + Self::f(x) + crate::f(1) }", 2),
        ("fn f(self) { other.f() + self.g.f() }", 0),
        ("fn f(self) { impl T { fn g() { Self::f(); } } }", 0),
        ("fn f(f: fn(u32) -> u32) -> u32 { f(1) }", 0),
    ];
    for (body, expected) in cases {
        let item = if body.starts_with("fn f(") {
            body.to_owned()
        } else {
            format!("fn f(n: u32) -> u32 {{ {body} }}")
        };
        let mut func: syn::ItemFn = syn::parse_str(&item).expect("a test case parses");
        let mut found = 0;
        crate::recursion::for_each_self_call(&func.sig, &mut func.block, &mut |_, _| found += 1);
        assert_eq!(found, expected, "self-calls in `{item}`");
    }
}

#[test]
fn a_timeout_bounds_a_fn_that_returns_a_result_and_is_refused_on_any_other() {
    let outputs = [
        ("-> Result<u8, E>", true),
        ("-> std::io::Result<u8>", true),
        ("-> (anyhow::Result<u8>)", true),
        ("-> Option<u8>", false),
        ("-> ()", false),
        ("", false),
        ("-> impl Send", false),
    ];
    for lane in LANES {
        let asyncness = if lane == Lane::IoBound { "async" } else { "" };
        for (output, is_result) in outputs {
            let item = format!("{asyncness} fn f() {output} {{ loop {{}} }}");
            let args = TokenStream::from_str("timeout = \"2s\"").expect("the arguments tokenize");
            let item = TokenStream::from_str(&item).expect("the item tokenizes");
            let expanded = entry::expand(lane, args, item).to_string();
            let refused = expanded.contains("compile_error");
            let bounded = expanded.contains("within");
            assert_eq!(
                (refused, bounded),
                (!is_result, is_result),
                "{lane:?} on `{output}`: `{expanded}`"
            );
        }
    }
}
