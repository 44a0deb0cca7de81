use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::quote;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Block, Signature, Visibility, braced, token};

/// A fn item whose body is kept as tokens: the signature must parse for the
/// macro to do anything, the body need not (rustc then reports its syntax
/// error itself, and the item still reaches rust-analyzer).
#[derive(Clone)]
pub(crate) struct LaneFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) brace: token::Brace,
    pub(crate) body: TokenStream,
}

impl Parse for LaneFn {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let body = content.parse()?;
        Ok(LaneFn {
            attrs,
            vis,
            sig,
            brace,
            body,
        })
    }
}

impl LaneFn {
    /// The body as statements, for the rules; `Err` when it does not parse.
    pub(crate) fn body_block(&self) -> syn::Result<Block> {
        let stmts = Block::parse_within.parse2(self.body.clone())?;
        Ok(Block {
            brace_token: self.brace,
            stmts,
        })
    }

    /// The body's tokens without the escape hatch's attributes, for a body
    /// that does not parse: rustc, which does not know them, would report
    /// each beside the syntax error.
    pub(crate) fn raw_body(&self) -> TokenStream {
        without_allow_attrs(self.body.clone()).0
    }
}

/// `attr` is axum's `#[debug_handler]`, under any path.
pub(crate) fn is_debug_handler(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|last| last.ident == "debug_handler")
}

/// `tokens` without any `#[lanes::allow_blocking(..)]`, and whether one was
/// removed (a group is rebuilt only then, so every other span stays exact).
fn without_allow_attrs(tokens: TokenStream) -> (TokenStream, bool) {
    let mut kept = Vec::new();
    let mut removed = false;
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Punct(pound) if pound.as_char() == '#' => {
                if let Some(TokenTree::Group(group)) = tokens.peek()
                    && group.delimiter() == Delimiter::Bracket
                    && Attribute::parse_outer
                        .parse2(quote!(#pound #group))
                        .is_ok_and(|attrs| attrs.iter().all(lanes_check::is_allow_attr))
                {
                    tokens.next();
                    removed = true;
                    continue;
                }
                kept.push(TokenTree::Punct(pound));
            }
            TokenTree::Group(group) => match without_allow_attrs(group.stream()) {
                (stream, true) => {
                    let mut rebuilt = Group::new(group.delimiter(), stream);
                    rebuilt.set_span(group.span());
                    kept.push(TokenTree::Group(rebuilt));
                    removed = true;
                }
                (_, false) => kept.push(TokenTree::Group(group)),
            },
            other => kept.push(other),
        }
    }
    (kept.into_iter().collect(), removed)
}
