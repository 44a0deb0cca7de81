//! `#[background]`: the fn becomes a job kind, and calling it enqueues a job.
//!
//! ```text
//! #[background(queue = "emails")]
//! async fn send_welcome(ctx: JobContext, State(app): State<App>, Json(to): Json<Address>) -> Result<(), MailError> { body }
//! ```
//! becomes
//! ```text
//! fn send_welcome(_: State<App>, Json(to): Json<Address>) -> Enqueue {
//!     async fn __lanes_job(ctx: JobContext, State(app): State<App>, Json(to): Json<Address>) -> Result<(), MailError> { body, polls timed }
//!     fn __lanes_run(context, payload) -> JobFuture {
//!         run_job(NAME, payload, move |mut arguments| {
//!             let __lanes_state_1 = job_state(&context, __LANES_STATE_1)?;
//!             let to = arguments.take("to")?;
//!             job_argument(&to);
//!             Ok(job_attempt(__lanes_job(context, State(__lanes_state_1), Json(to))))
//!         })
//!     }
//!     const __LANES_STATE_1: StateArgument<App> = state_argument();
//!     const __LANES_JOB: JobKind = JobKind::new(
//!         NAME, Some("emails"), None, None, &[__LANES_STATE_1.state_type()], None, __lanes_run,
//!     );
//!     inventory::submit! { __LANES_JOB }
//!     Enqueue::new(__LANES_JOB, JobPayload::new().argument("to", job_argument(&to)))
//! }
//! ```
//! A schedule takes the place of the `None` before `__lanes_run`:
//! `every = "5m"` gives `Some(Schedule::every("5m", 300000))`, `cron = ".."`
//! gives `Some(Schedule::cron(".."))`.
//! A synchronous fn's `__lanes_job` runs through the blocking lane. A
//! `State` argument stays on the enqueueing fn, unbound, so that it is
//! still an axum handler of a router with that state.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Block, FnArg, PathArguments, ReturnType, Signature, Token, Type};

use crate::args::{LaneArgs, Schedule};
use crate::expand::{option, site, timed_body};
use crate::item::{LaneFn, is_debug_handler};
use crate::valid::{is_job_context, worker_state};
use crate::{Lane, pattern, private};

pub(crate) fn expand(
    func: &LaneFn,
    body: &Block,
    args: &LaneArgs,
    prelude: &TokenStream,
) -> TokenStream {
    let private = private::path(Span::call_site());
    let sig = &func.sig;
    let inner = Ident::new("__lanes_job", sig.ident.span());
    let context = Ident::new("__lanes_context", Span::call_site());

    // The call of the inner fn, with each argument rebuilt from storage
    // (or given by the worker: its context, its states), and the bindings
    // to store.
    let mut takes = Vec::new();
    let mut call_args = Vec::new();
    let mut stored = Vec::new();
    let mut states = Vec::new();
    let mut state_arguments = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(typed) = input else {
            unreachable!("validation refuses receivers")
        };
        if is_job_context(typed) {
            call_args.push(quote!(#context));
            continue;
        }
        if let Some(state) = worker_state(typed) {
            // Spanned at the state's type: one that the workers cannot
            // keep and clone is reported there, once.
            let argument = Ident::new(&format!("__LANES_STATE_{index}"), Span::call_site());
            let state_private = private::path(state.span());
            state_arguments.push(quote_spanned!(state.span()=>
                const #argument: #private::StateArgument<#state> = #state_private::state_argument();
            ));
            states.push(quote!(#argument.state_type()));
            let value = Ident::new(&format!("__lanes_state_{index}"), Span::call_site());
            takes.push(quote!(let #value = #private::job_state(&#context, #argument)?;));
            let constructor = state_constructor(&typed.ty);
            call_args.push(quote!(#constructor(#value)));
            continue;
        }
        let rebuilt = pattern::rebuild(&typed.pat).expect("validation checked the patterns");
        for binding in &rebuilt.bindings {
            let name = binding.to_string();
            // Spanned at the binding: a value that cannot be stored or
            // read back is reported where the signature names it, once,
            // since both ends ask the same `job_argument` of it.
            let argument_private = private::path(binding.span());
            takes.push(quote_spanned!(binding.span()=>
                let #binding = arguments.take(#name)?;
                #argument_private::job_argument(&#binding);
            ));
            stored.push(quote_spanned!(binding.span()=>
                .argument(#name, #argument_private::job_argument(&#binding))
            ));
        }
        call_args.push(rebuilt.expr);
    }

    let name = match &args.kind {
        Some(kind) => quote!(#kind),
        None => {
            let ident = sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #ident))
        }
    };
    // Options not given are `None`: the runtime's `NewJob` holds the
    // defaults.
    let queue = option(args.queue.as_ref().map(|queue| quote!(#queue)));
    let attempts = option(args.retries.map(|retries| {
        let attempts = retries + 1;
        quote!(#attempts)
    }));
    let timeout = option(args.timeout.map(|timeout| {
        let ms = u64::try_from(timeout.after.as_millis()).unwrap_or(u64::MAX);
        quote!(::core::time::Duration::from_millis(#ms))
    }));

    let schedule = option(args.schedule.as_ref().map(|schedule| match schedule {
        Schedule::Every { written, millis } => quote!(#private::Schedule::every(#written, #millis)),
        Schedule::Cron(expression) => quote!(#private::Schedule::cron(#expression)),
    }));

    // The job fn as written; async bodies get the poll timer, sync ones run
    // on the blocking lane.
    let inner_sig = Signature {
        ident: inner.clone(),
        ..sig.clone()
    };
    // Where rustc reports an outcome that cannot be stored, or a job that
    // cannot move between threads: the return type.
    let output_span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    };
    let job_attempt = private::path(output_span);
    let inner_at_output = Ident::new("__lanes_job", output_span);
    let (inner_body, start) = if sig.asyncness.is_some() {
        let site = site(Lane::IoBound, &sig.ident, args);
        (
            // A job's `timeout` bounds each attempt, in the worker.
            timed_body(&inner_sig, body, &site, None, &TokenStream::new()),
            quote_spanned!(output_span=>
                #job_attempt::job_attempt(#inner_at_output(#(#call_args),*))
            ),
        )
    } else {
        let site = site(Lane::Background, &sig.ident, args);
        (
            quote!(#body),
            quote_spanned!(output_span=> #job_attempt::job_attempt({
                #site
                #private::run_blocking(&__LANES_SITE, move || #inner(#(#call_args),*))
            })),
        )
    };

    let public_sig = Signature {
        asyncness: None,
        inputs: public_inputs(sig),
        output: syn::parse_quote!(-> #private::Enqueue),
        ..sig.clone()
    };
    let (debug_handler, attrs): (Vec<&Attribute>, Vec<&Attribute>) =
        func.attrs.iter().partition(|attr| is_debug_handler(attr));
    let checked_twin = checked_twin(&debug_handler, &public_sig);
    let vis = &func.vis;
    let enqueueing_fn = quote!(
        #(#attrs)*
        #vis #public_sig {
            #prelude
            #[allow(clippy::too_many_arguments)]
            #inner_sig #inner_body

            fn __lanes_run(
                #context: #private::JobContext,
                payload: #private::JsonValue,
            ) -> #private::JobFuture {
                #private::run_job(#name, payload, move |mut arguments| {
                    #(#takes)*
                    ::core::result::Result::Ok(#start)
                })
            }

            #(#state_arguments)*
            const __LANES_JOB: #private::JobKind = #private::JobKind::new(
                #name,
                #queue,
                #attempts,
                #timeout,
                &[#(#states),*],
                #schedule,
                __lanes_run,
            );
            #private::inventory::submit! { __LANES_JOB }

            #private::Enqueue::new(__LANES_JOB, #private::JobPayload::new() #(#stored)*)
        }
    );
    quote!(#enqueueing_fn #checked_twin)
}

/// `#[debug_handler]` (axum's, under any path) copies the body of the fn it
/// checks into hidden fns, where the job kind's registration would run a
/// second time, and every worker would refuse the kind as registered
/// twice. It checks a twin instead: the enqueueing fn's signature with no
/// body, in a block of its own so that it can keep the fn's name.
fn checked_twin(debug_handler: &[&Attribute], public_sig: &Signature) -> TokenStream {
    if debug_handler.is_empty() {
        return TokenStream::new();
    }
    quote! {
        const _: () = {
            #(#debug_handler)*
            #[allow(dead_code, unused_variables, clippy::too_many_arguments)]
            #public_sig {
                ::core::unreachable!()
            }
        };
    }
}

/// `State` of `State<S>` (or `axum::extract::State` of
/// `axum::extract::State<S>`): the tuple struct that wraps the worker's
/// value, named as the user named it.
fn state_constructor(ty: &Type) -> TokenStream {
    let Type::Path(path) = ty else {
        unreachable!("`worker_state` accepts paths only")
    };
    let mut constructor = path.path.clone();
    if let Some(last) = constructor.segments.last_mut() {
        last.arguments = PathArguments::None;
    }
    quote!(#constructor)
}

/// The enqueueing fn's parameters: the fn's own, without the `JobContext`
/// the worker supplies, without `mut` (it only reads them), and with `_`
/// for a `State` (extracted by axum, but not stored: the worker gives it).
fn public_inputs(sig: &Signature) -> syn::punctuated::Punctuated<FnArg, Token![,]> {
    sig.inputs
        .iter()
        .filter(|input| !matches!(input, FnArg::Typed(typed) if is_job_context(typed)))
        .map(|input| match input {
            FnArg::Typed(typed) if worker_state(typed).is_some() => FnArg::Typed(syn::PatType {
                pat: Box::new(syn::parse_quote_spanned!(typed.pat.span()=> _)),
                ..typed.clone()
            }),
            FnArg::Typed(typed) => FnArg::Typed(syn::PatType {
                pat: Box::new(pattern::without_mut(&typed.pat)),
                ..typed.clone()
            }),
            receiver => receiver.clone(),
        })
        .collect()
}

/// What is emitted beside errors: the enqueueing fn's outward shape, so
/// callers' `.await?` compiles, with `body` (the statements, or the raw
/// tokens of a body that does not parse) kept (`async`, so that an `.await`
/// is not reported twice) so its names stay used and checked.
pub(crate) fn fallback(func: &LaneFn, body: TokenStream, prelude: &TokenStream) -> TokenStream {
    let private = private::path(Span::call_site());
    let unqualified = Signature {
        constness: None,
        unsafety: None,
        abi: None,
        ..func.sig.clone()
    };
    let public_sig = Signature {
        asyncness: None,
        inputs: public_inputs(&func.sig),
        output: syn::parse_quote!(-> #private::Enqueue),
        ..unqualified.clone()
    };
    let inner_sig = Signature {
        asyncness: Some(Token![async](func.sig.fn_token.span)),
        ident: Ident::new("__lanes_job", func.sig.ident.span()),
        inputs: func
            .sig
            .inputs
            .iter()
            .filter(|input| matches!(input, FnArg::Typed(_)))
            .cloned()
            .collect(),
        ..unqualified
    };
    let attrs = &func.attrs;
    let vis = &func.vis;
    quote!(
        #(#attrs)*
        #[allow(unused_variables)]
        #vis #public_sig {
            #prelude
            #[allow(dead_code)]
            #inner_sig { #body }
            ::core::unreachable!("this #[background] fn did not compile")
        }
    )
}
