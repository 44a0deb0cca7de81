use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Block, Signature, Visibility, braced, token};

/// A fn item whose body is kept as tokens: the signature must parse for the
/// macro to do anything, the body need not (rustc then reports its syntax
/// error itself, and the item still reaches rust-analyzer).
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
}
