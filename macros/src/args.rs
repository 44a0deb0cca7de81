//! The attribute's own arguments: `#[blocking(limit = 8)]`.

use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta, Token};

use crate::Lane;
use crate::errors::Errors;

/// The arguments of one lane attribute, validated.
#[derive(Default)]
pub(crate) struct LaneArgs {
    /// `#[blocking(limit = N)]`: at most N calls of this fn run at once.
    pub(crate) limit: Option<usize>,
}

/// What each lane accepts, for the "unknown argument" message.
fn expected(lane: Lane) -> &'static str {
    match lane {
        Lane::Blocking => "expected `limit = <max concurrent calls>`",
        Lane::IoBound | Lane::CpuBound => "it takes no arguments",
    }
}

/// Parses the arguments, reporting every bad one.
pub(crate) fn parse(lane: Lane, tokens: proc_macro2::TokenStream, errors: &mut Errors) -> LaneArgs {
    let mut args = LaneArgs::default();
    let Some(metas) = errors.take(Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens))
    else {
        return args;
    };
    let mut limit_seen = false;
    for meta in metas {
        match &meta {
            // limit = 8
            Meta::NameValue(nv) if lane == Lane::Blocking && nv.path.is_ident("limit") => {
                if limit_seen {
                    errors.push(syn::Error::new_spanned(&nv.path, "duplicate `limit`"));
                    continue;
                }
                limit_seen = true;
                args.limit = errors.take(parse_limit(&nv.value));
            }
            // limit, limit(8)
            Meta::Path(p) | Meta::List(syn::MetaList { path: p, .. })
                if lane == Lane::Blocking && p.is_ident("limit") =>
            {
                errors.push(syn::Error::new_spanned(
                    &meta,
                    "`limit` takes a number: `#[blocking(limit = 8)]`",
                ));
            }
            _ => {
                let name = meta.path().get_ident().map_or_else(
                    || quote::ToTokens::to_token_stream(meta.path()).to_string(),
                    ToString::to_string,
                );
                errors.push(syn::Error::new_spanned(
                    meta.path(),
                    format!(
                        "unknown argument `{name}` for {}; {}",
                        lane.attribute(),
                        expected(lane)
                    ),
                ));
            }
        }
    }
    args
}

fn parse_limit(value: &Expr) -> syn::Result<usize> {
    let usage = "`limit` takes a whole number of concurrent calls: `#[blocking(limit = 8)]`";
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = value
    else {
        return Err(syn::Error::new(value.span(), usage));
    };
    match int.base10_parse::<usize>() {
        Ok(0) => Err(syn::Error::new(
            int.span(),
            "`limit = 0` would never run this fn; the limit must be at least 1",
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(syn::Error::new(int.span(), usage)),
    }
}
