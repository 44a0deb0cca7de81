//! The driver shared by every lane: parse -> validate -> expand. Every exit
//! emits an item, so a mistake never makes the fn disappear.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::errors::Errors;
use crate::item::{self, LaneFn};
use crate::{Lane, args, expand, valid};

pub(crate) fn expand(lane: Lane, args: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(func) = syn::parse2::<LaneFn>(item.clone()) else {
        let error =
            syn::Error::new_spanned(&item, format!("{} goes on a fn item", lane.attribute()));
        let error = error.to_compile_error();
        return quote!(#error #item);
    };
    let Ok(mut body) = func.body_block() else {
        return unparsed(lane, args, &func);
    };

    let mut errors = Errors::default();
    let args = args::parse(lane, args, &mut errors);
    valid::signature(lane, &func.sig, &mut errors);
    valid::self_calls(lane, &func.sig, &body, &mut errors);
    let (config, prelude) = match lanes_check::Config::for_current_crate() {
        Ok(Some((path, config))) => (config, config_tracking(&path)),
        Ok(None) => Default::default(),
        Err(error) => {
            // The built-in rules still apply.
            errors.push(syn::Error::new(Span::call_site(), error));
            Default::default()
        }
    };
    for finding in lanes_check::scan(&body, lane.scope(&func.sig), &config) {
        errors.push(finding.to_syn_error());
    }
    lanes_check::strip_allow_attrs(&mut body);

    if errors.is_empty() {
        expand::lane(lane, &func, &body, &args, &prelude)
    } else {
        let errors = errors.to_compile_error();
        let body = expand::fallback_body(lane, &func.sig, &body);
        let fallback = fallback(lane, &func, body, &prelude);
        quote!(#errors #fallback)
    }
}

/// A body that does not parse: rustc reports the syntax error itself, once,
/// on the body's own tokens. The fn keeps the outward shape of a success
/// around them, so callers' `.await` compiles, and the mistakes in the
/// signature and the arguments are reported beside it. `#[debug_handler]`
/// is left out: it would parse the body too, and report the error again.
fn unparsed(lane: Lane, args: TokenStream, func: &LaneFn) -> TokenStream {
    let mut errors = Errors::default();
    args::parse(lane, args, &mut errors);
    valid::signature(lane, &func.sig, &mut errors);
    let errors = errors.to_compile_error();
    let func = LaneFn {
        attrs: func
            .attrs
            .iter()
            .filter(|attr| !item::is_debug_handler(attr))
            .cloned()
            .collect(),
        ..func.clone()
    };
    let fallback = fallback(lane, &func, func.raw_body(), &TokenStream::new());
    quote!(#errors #fallback)
}

/// What is emitted beside errors: a fn of the outward shape a success has.
fn fallback(lane: Lane, func: &LaneFn, body: TokenStream, prelude: &TokenStream) -> TokenStream {
    if lane == Lane::Background {
        crate::background::fallback(func, body, prelude)
    } else {
        expand::fallback(func, body, prelude)
    }
}

/// Makes cargo rebuild the crate when `lanes.toml` or `LANES_CONF_DIR`
/// changes: proc macros cannot declare the files they read on stable Rust,
/// but `include_bytes!` and `option_env!` are tracked.
fn config_tracking(path: &std::path::Path) -> TokenStream {
    let path = path.display().to_string();
    let env = lanes_check::DIR_ENV;
    quote! {
        const _: () = {
            let _ = ::core::include_bytes!(#path);
            let _ = ::core::option_env!(#env);
        };
    }
}
