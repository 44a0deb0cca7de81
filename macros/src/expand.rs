//! What each lane turns a fn into, and the fallback emitted beside errors.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Block, FnArg, ReturnType, Signature, Token, Type};

use crate::Lane;
use crate::args::{LaneArgs, Timeout};
use crate::item::LaneFn;
use crate::{pattern, private, recursion};

/// The lane's rewrite of a fn that passed every check. `prelude` holds items
/// the expansion must carry whatever the lane (config file tracking).
pub(crate) fn lane(
    lane: Lane,
    func: &LaneFn,
    body: &Block,
    args: &LaneArgs,
    prelude: &TokenStream,
) -> TokenStream {
    match lane {
        Lane::IoBound => timed(func, body, args, prelude),
        Lane::Blocking | Lane::CpuBound => offloaded(lane, func, body, args, prelude),
        Lane::Background => crate::background::expand(func, body, args, prelude),
    }
}

/// `async fn f(args) -> R { body }` becomes
/// `async fn f(args) -> R { io_bound(&SITE, async move { body }).await }`:
/// it still runs on the tokio worker, and each poll is timed. With a
/// `timeout`, the call is `within(&SITE, timeout, io_bound(..)).await`, as
/// on the pool lanes.
fn timed(func: &LaneFn, body: &Block, args: &LaneArgs, prelude: &TokenStream) -> TokenStream {
    let site = site(Lane::IoBound, &func.sig.ident, args);
    let body = timed_body(&func.sig, body, &site, args.timeout.as_ref(), prelude);
    emit(func, &func.sig, body)
}

/// The body of an `#[io_bound]` fn: `body`, its polls timed at `site`, the
/// whole call bounded by `timeout` when there is one.
pub(crate) fn timed_body(
    sig: &Signature,
    body: &Block,
    site: &TokenStream,
    timeout: Option<&Timeout>,
    prelude: &TokenStream,
) -> TokenStream {
    let pin_output = pin_output_type(&sig.output);
    let stmts = &body.stmts;
    // Spanned at the fn's name, not the attribute: rustc reports a cycle
    // through the body (E0733, an unboxed recursive call) at the fn's
    // signature only when the body's braces are the fn's, and names the
    // wrapper call and the async block, which are the fn's for the user.
    let span = sig.ident.span();
    let private = private::path(span);
    let future = quote_spanned!(span=> async move { #pin_output #(#stmts)* });
    let call = quote_spanned!(span=> #private::io_bound(&__LANES_SITE, #future));
    let call = awaited(call, span, &sig.output, timeout);
    quote_spanned!(span=> {
        #prelude
        #site
        #call
    })
}

/// An async block infers its output from its first `return` or its tail,
/// where the fn had its declared type: `return Err(Box::new(e))` coerced to
/// `Box<dyn Error>` in the fn would not in the block. An unreachable
/// `return` of the declared type, first in the block, fixes the output
/// before the body is checked (`impl Trait` stays inferred).
fn pin_output_type(output: &ReturnType) -> TokenStream {
    let (ty, span) = match output {
        ReturnType::Type(_, ty) if mentions_impl_trait(ty) => return TokenStream::new(),
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
        ReturnType::Default => (quote!(()), Span::call_site()),
    };
    quote_spanned!(span=>
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::needless_return
        )]
        if false {
            let __lanes_declared_output: #ty = loop {};
            return __lanes_declared_output;
        }
    )
}

/// `fn f(args) -> R { body }` becomes
/// `async fn f(args) -> R { run_<lane>(&SITE, move || -> R { body }).await }`:
/// the arguments are captured by the closure and moved to the pool thread.
fn offloaded(
    lane: Lane,
    func: &LaneFn,
    body: &Block,
    args: &LaneArgs,
    prelude: &TokenStream,
) -> TokenStream {
    let run = match lane {
        Lane::Blocking => "run_blocking",
        _ => "run_cpu",
    };
    let closure_output = match &func.sig.output {
        // A closure cannot name an `impl Trait` return type; inference does it.
        ReturnType::Type(_, ty) if !mentions_impl_trait(ty) => quote!(-> #ty),
        _ => TokenStream::new(),
    };
    let checks = ownership_checks(&func.sig);
    // Spanned at the return type: when the result cannot cross threads,
    // rustc's error on the call (and its twin on the `.await`, which then
    // collapses into it) lands on the type.
    let call_span = match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => Span::call_site(),
    };
    let run = Ident::new(run, call_span);
    let run_path = private::path(call_span);
    let call = quote_spanned!(call_span=>
        #run_path::#run(&__LANES_SITE, move || #closure_output #body)
    );
    let call = awaited(call, call_span, &func.sig.output, args.timeout.as_ref());
    let sig = Signature {
        asyncness: Some(Token![async](func.sig.fn_token.span)),
        ..func.sig.clone()
    };
    let site = site(lane, &func.sig.ident, args);
    emit(
        func,
        &sig,
        quote!({
            #prelude
            #checks
            #site
            #call
        }),
    )
}

/// `call`, a lane call's future, awaited (the `.await` at `span`), within
/// the fn's `timeout` when it has one.
fn awaited(
    call: TokenStream,
    span: Span,
    output: &ReturnType,
    timeout: Option<&Timeout>,
) -> TokenStream {
    let Some(timeout) = timeout else {
        return quote_spanned!(span=> #call.await);
    };
    // Spanned at the return type: rustc reports an error type without
    // `From<TimedOut>` at `within` and again at its `.await`; at one span
    // the two collapse into one error.
    let span = match output {
        ReturnType::Type(_, ty) => ty.span(),
        // Validation refuses a timeout on a fn without a return type.
        ReturnType::Default => span,
    };
    let private = private::path(span);
    // Past `u64::MAX` ns (584 years) a timeout never fires anyway.
    let nanos = u64::try_from(timeout.after.as_nanos()).unwrap_or(u64::MAX);
    quote_spanned!(span=>
        #private::within(&__LANES_SITE, ::core::time::Duration::from_nanos(#nanos), #call).await
    )
}

/// The `static __LANES_SITE` of the fn `ident`: its name, lane, limit and
/// counters. `Lane::Background` stands for the blocking lane a synchronous
/// `#[background]` fn's jobs run on.
pub(crate) fn site(lane: Lane, ident: &Ident, args: &LaneArgs) -> TokenStream {
    let private = private::path(Span::call_site());
    let name = ident.to_string();
    let name = quote!(::core::concat!(::core::module_path!(), "::", #name));
    let constructor = match lane {
        Lane::IoBound => quote!(io_bound(#name)),
        Lane::CpuBound => quote!(cpu_bound(#name)),
        Lane::Blocking | Lane::Background => {
            let limit = option(args.limit.map(|n| quote!(#n)));
            quote!(blocking(#name, #limit))
        }
    };
    quote!(static __LANES_SITE: #private::Site = #private::Site::#constructor;)
}

/// `value` as an `Option` expression of the generated code.
pub(crate) fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

/// One hidden assertion per argument, spanned at its type, so that a type
/// that cannot cross threads (`Rc<T>`, a raw pointer) is reported where it
/// is written rather than at the closure that captures it. An `impl Trait`
/// type cannot be named, so its check takes each value the argument's
/// pattern binds instead; rustc's "cannot be sent between threads safely"
/// then lands on the `impl Trait` too, with its advice to add `+ Send`.
fn ownership_checks(sig: &Signature) -> TokenStream {
    let mut checks = TokenStream::new();
    let mut by_value = false;
    for input in &sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        let ty = &*typed.ty;
        let span = ty.span();
        if mentions_impl_trait(ty) {
            // `&` at the type's first token and the value at its last: the
            // argument expression, where rustc reports, spans the type. The
            // call is the attribute's ("required by a bound introduced by
            // this call").
            let last = ty.to_token_stream().into_iter().last();
            let last = last.map_or(span, |token| token.span());
            for mut binding in pattern::bindings(&typed.pat) {
                binding.set_span(last);
                let reference = quote_spanned!(span=> &);
                checks.extend(quote! {
                    __lanes_argument_moves_to_another_thread(#reference #binding);
                });
                by_value = true;
            }
        } else {
            let private = private::path(span);
            checks.extend(quote_spanned!(span=>
                #private::argument_moves_to_another_thread::<#ty>();
            ));
        }
    }
    if by_value {
        // `Send` only: a missing `'static` is reported by rustc at the
        // closure's call, with the bound to add; a second report here would
        // land on the attribute.
        checks.extend(quote! {
            fn __lanes_argument_moves_to_another_thread<
                T: ?::core::marker::Sized + ::core::marker::Send,
            >(_: &T) {}
        });
    }
    checks
}

pub(crate) fn mentions_impl_trait(ty: &Type) -> bool {
    struct FindImpl(bool);
    impl<'ast> Visit<'ast> for FindImpl {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = FindImpl(false);
    finder.visit_type(ty);
    finder.0
}

/// What is emitted beside errors: a fn of the same outward shape as a
/// success (`async`, for every lane), with `body` (the statements, or the
/// raw tokens of a body that does not parse) kept inline, so that callers'
/// `.await` compiles and the user sees only the real mistakes.
pub(crate) fn fallback(func: &LaneFn, body: TokenStream, prelude: &TokenStream) -> TokenStream {
    let sig = Signature {
        constness: None,
        asyncness: Some(Token![async](func.sig.fn_token.span)),
        abi: None,
        ..func.sig.clone()
    };
    emit(func, &sig, quote!({ #prelude #body }))
}

/// The statements of the fallback's body. A `#[blocking]` or `#[cpu_bound]`
/// fn's calls to itself (refused by validation) would be futures in the
/// `async` fallback, so each is passed through a helper that gives the
/// value the body expects, and rustc adds no error of its own about them.
pub(crate) fn fallback_body(lane: Lane, sig: &Signature, body: &Block) -> TokenStream {
    let mut body = body.clone();
    let mut defused = false;
    if matches!(lane, Lane::Blocking | Lane::CpuBound) && sig.asyncness.is_none() {
        recursion::for_each_self_call(sig, &mut body, &mut |call, callee| {
            *call = syn::parse_quote_spanned!(callee.span()=> __lanes_self_call(#call));
            defused = true;
        });
    }
    let helper = defused.then(|| {
        quote! {
            fn __lanes_self_call<F: ::core::future::Future>(_: F) -> F::Output {
                ::core::unreachable!()
            }
        }
    });
    let stmts = &body.stmts;
    quote!(#helper #(#stmts)*)
}

pub(crate) fn emit(func: &LaneFn, sig: &Signature, body: TokenStream) -> TokenStream {
    let LaneFn { attrs, vis, .. } = func;
    quote!(#(#attrs)* #vis #sig #body)
}
