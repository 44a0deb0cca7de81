//! A `#[background]` fn stores each value its argument patterns bind and
//! rebuilds the arguments from them when the job runs: `Json(body):
//! Json<Signup>` stores `body` and passes `Json(body)` back, so axum
//! extractors need no `Serialize` of their own.

use proc_macro2::{Ident, TokenStream};
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Member, Pat};

/// What a pattern binds, and the expression that rebuilds its value.
pub(crate) struct Rebuilt {
    pub(crate) bindings: Vec<Ident>,
    pub(crate) expr: TokenStream,
}

/// Rebuilds `pat` from its bindings, or says why it cannot be.
pub(crate) fn rebuild(pat: &Pat) -> syn::Result<Rebuilt> {
    let mut bindings = Vec::new();
    let expr = rebuild_into(pat, &mut bindings)?;
    Ok(Rebuilt { bindings, expr })
}

fn rebuild_into(pat: &Pat, bindings: &mut Vec<Ident>) -> syn::Result<TokenStream> {
    match pat {
        Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => {
            bindings.push(binding.ident.clone());
            let ident = &binding.ident;
            Ok(quote!(#ident))
        }
        Pat::Tuple(tuple) => {
            let elems = rebuild_all(tuple.elems.iter(), bindings)?;
            Ok(quote!((#(#elems,)*)))
        }
        Pat::TupleStruct(tuple) if tuple.qself.is_none() => {
            let path = &tuple.path;
            let elems = rebuild_all(tuple.elems.iter(), bindings)?;
            Ok(quote!(#path(#(#elems),*)))
        }
        Pat::Struct(strukt) if strukt.qself.is_none() => {
            if let Some(rest) = &strukt.rest {
                return Err(syn::Error::new_spanned(rest, parts_left_out()));
            }
            let path = &strukt.path;
            let fields = strukt
                .fields
                .iter()
                .map(|field| {
                    let member: &Member = &field.member;
                    let value = rebuild_into(&field.pat, bindings)?;
                    Ok(quote!(#member: #value))
                })
                .collect::<syn::Result<Vec<_>>>()?;
            Ok(quote!(#path { #(#fields),* }))
        }
        Pat::Paren(paren) => rebuild_into(&paren.pat, bindings),
        Pat::Wild(wild) => Err(syn::Error::new_spanned(
            wild,
            "#[background] stores the values of its arguments until the job runs; `_` drops \
             this one, so the job could not be given it: bind it to a name",
        )),
        Pat::Rest(rest) => Err(syn::Error::new_spanned(rest, parts_left_out())),
        other => Err(syn::Error::new_spanned(
            other,
            "#[background] stores the names an argument's pattern binds and rebuilds the \
             argument from them when the job runs; this pattern cannot be rebuilt: bind the \
             argument to a name, or use a pattern of names such as `Json(body)` or \
             `Path((a, b))`",
        )),
    }
}

fn rebuild_all<'p>(
    pats: impl Iterator<Item = &'p Pat>,
    bindings: &mut Vec<Ident>,
) -> syn::Result<Vec<TokenStream>> {
    pats.map(|pat| rebuild_into(pat, bindings)).collect()
}

fn parts_left_out() -> &'static str {
    "#[background] stores the values of its arguments until the job runs; `..` leaves parts \
     out, so the job could not be given them: bind every part to a name"
}

/// `pat` without `mut` on its bindings: the enqueueing fn only reads them.
pub(crate) fn without_mut(pat: &Pat) -> Pat {
    struct StripMut;
    impl VisitMut for StripMut {
        fn visit_pat_ident_mut(&mut self, binding: &mut syn::PatIdent) {
            binding.mutability = None;
            syn::visit_mut::visit_pat_ident_mut(self, binding);
        }
    }
    let mut pat = pat.clone();
    StripMut.visit_pat_mut(&mut pat);
    pat
}

/// The names `pat` binds, in order (`(a, Json(b))` binds `a` and `b`).
pub(crate) fn bindings(pat: &Pat) -> Vec<Ident> {
    struct Bindings(Vec<Ident>);
    impl<'ast> syn::visit::Visit<'ast> for Bindings {
        fn visit_pat_ident(&mut self, binding: &'ast syn::PatIdent) {
            self.0.push(binding.ident.clone());
            syn::visit::visit_pat_ident(self, binding);
        }
    }
    let mut found = Bindings(Vec::new());
    syn::visit::Visit::visit_pat(&mut found, pat);
    found.0
}
