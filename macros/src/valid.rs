//! Signature rules, one fn each, shared by the lanes.

use syn::visit::Visit;
use syn::{
    Block, FnArg, GenericArgument, Lifetime, PatType, PathArguments, ReturnType, Signature, Type,
    TypeReference,
};

use crate::args::{LaneArgs, Timeout};
use crate::errors::Errors;
use crate::{Lane, pattern, recursion};

pub(crate) fn signature(lane: Lane, sig: &Signature, args: &LaneArgs, errors: &mut Errors) {
    qualifiers(lane, sig, errors);
    asyncness(lane, sig, errors);
    if lane != Lane::IoBound {
        owned_arguments(lane, sig, errors);
    }
    if lane == Lane::Background {
        background(sig, args, errors);
    } else if let Some(timeout) = &args.timeout {
        timed_out_is_an_error(sig, timeout, errors);
    }
}

/// Outside a request, a call past its `timeout` has only its error to
/// return, so the fn returns a `Result`; rustc checks `E: From<TimedOut>`.
/// (A `#[background]` job's timeout ends an attempt, which the worker
/// records; the fn keeps its return type.)
fn timed_out_is_an_error(sig: &Signature, timeout: &Timeout, errors: &mut Errors) {
    let message = |written: &str| {
        format!(
            "`timeout` needs this fn to return `Result<T, E>` with `E: From<lanes::TimedOut>`: \
             outside a request, a call past its timeout returns `Err(TimedOut.into())` (under \
             `lanes::Watch` or `lanes::ShedLayer` the request is answered 504); return \
             `Result<{written}, E>`, e.g. `std::io::Result<{written}>`"
        )
    };
    match &sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => {}
        ReturnType::Type(_, ty) => {
            let written = tidy(&quote::ToTokens::to_token_stream(ty).to_string());
            errors.push(syn::Error::new_spanned(ty, message(&written)));
        }
        ReturnType::Default => errors.push(syn::Error::new(timeout.span, message("()"))),
    }
}

/// `#[blocking]` and `#[cpu_bound]` make the fn `async`, so a call to
/// itself in its body would be a future where the body expects the value
/// (rustc's own error, "cannot multiply `u64` by `impl Future`", names
/// neither the cause nor the fix).
pub(crate) fn self_calls(lane: Lane, sig: &Signature, body: &Block, errors: &mut Errors) {
    if !matches!(lane, Lane::Blocking | Lane::CpuBound) || sig.asyncness.is_some() {
        return;
    }
    let name = &sig.ident;
    let plain = match sig.inputs.first() {
        Some(FnArg::Receiver(_)) => "method",
        _ => "inner fn",
    };
    let inner_sig = Signature {
        ident: quote::format_ident!("{name}_inner"),
        ..sig.clone()
    };
    let message = format!(
        "`{name}` calls itself, but {} makes `{name}` async: the inner call would be a future; \
         move the recursion into a plain {plain} (`{}`) and call that from the body",
        lane.attribute(),
        tidy_signature(&inner_sig),
    );
    let mut body = body.clone();
    recursion::for_each_self_call(sig, &mut body, &mut |_, callee| {
        errors.push(syn::Error::new_spanned(callee, &message));
    });
}

/// `sig` as a user writes it: `fn fib_inner(n: u32) -> u64`.
fn tidy_signature(sig: &Signature) -> String {
    let text = quote::ToTokens::to_token_stream(sig).to_string();
    // rustc's printer breaks long token streams into lines.
    let text = tidy(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    text.replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" : ", ": ")
        .replace(" <", "<")
}

/// Why a lane needs owned arguments, for messages.
fn why_owned(lane: Lane) -> String {
    match lane {
        Lane::Background => {
            "#[background] stores its arguments until a worker runs the job".to_owned()
        }
        _ => format!("{} moves its arguments to another thread", lane.attribute()),
    }
}

/// Whether `input` is the job's `JobContext`, which the worker passes and
/// callers do not.
pub(crate) fn is_job_context(input: &PatType) -> bool {
    match &*input.ty {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|last| last.ident == "JobContext" && last.arguments.is_none())
        }
        _ => false,
    }
}

/// The `S` of a `State<S>` argument, which the worker gives (from the
/// states it was started with) and the payload does not hold. Recognised
/// like `JobContext`, by the last segment of its path: `State<S>`,
/// `axum::extract::State<S>`; an alias of it is an argument to store.
pub(crate) fn worker_state(input: &PatType) -> Option<&Type> {
    let Type::Path(path) = &*input.ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || last.ident != "State" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    let mut arguments = arguments.args.iter();
    match (arguments.next(), arguments.next()) {
        (Some(GenericArgument::Type(state)), None) => Some(state),
        _ => None,
    }
}

/// A job kind is one concrete fn whose arguments are rebuilt from storage
/// and whose outcome is stored. A scheduled kind's jobs are enqueued by the
/// workers, with no arguments, so it stores none.
fn background(sig: &Signature, args: &LaneArgs, errors: &mut Errors) {
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "#[background] cannot go on a generic fn: a stored job names the one fn that runs \
             it, so its types must be concrete",
        ));
    }
    let mut contexts = 0;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "#[background] cannot go on a method: a job runs later, in a worker, with no \
                 `self`; make it a free fn and pass what it needs as arguments",
            )),
            FnArg::Typed(typed) if is_job_context(typed) => {
                contexts += 1;
                if contexts > 1 {
                    errors.push(syn::Error::new_spanned(
                        typed,
                        "a #[background] fn takes at most one `JobContext`",
                    ));
                }
            }
            // Not stored, so any pattern will do.
            FnArg::Typed(typed) if worker_state(typed).is_some() => {}
            FnArg::Typed(typed) => {
                if args.scheduled_at.is_some() {
                    errors.push(syn::Error::new_spanned(
                        typed,
                        "a scheduled #[background] fn takes no stored arguments: its schedule \
                         enqueues each job with none; take what the job needs as `State<T>` \
                         (the workers give it) or read it in the body, or remove the schedule \
                         and enqueue the jobs by calling the fn",
                    ));
                }
                if let Err(error) = pattern::rebuild(&typed.pat) {
                    errors.push(error);
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && !returns_unit_or_result(ty)
    {
        let written = tidy(&quote::ToTokens::to_token_stream(ty).to_string());
        errors.push(syn::Error::new_spanned(
            ty,
            format!(
                "a #[background] fn returns `()` or `Result<T, E>` (the job's result, kept as \
                 JSON, and its error, kept as text); `{written}` is neither: return \
                 `Result<{written}, E>`"
            ),
        ));
    }
}

/// `()`, or a `Result`.
fn returns_unit_or_result(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(paren) => returns_unit_or_result(&paren.elem),
        _ => is_result(ty),
    }
}

/// A path ending in `Result` (`Result<T, E>`, `io::Result<T>`,
/// `anyhow::Result<T>`); rustc checks its parameters' bounds.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Paren(paren) => is_result(&paren.elem),
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "Result"),
        _ => false,
    }
}

/// `const`, `unsafe` and `extern` have no meaning once the body runs on
/// another thread behind an `async fn`.
fn qualifiers(lane: Lane, sig: &Signature, errors: &mut Errors) {
    let attr = lane.attribute();
    let becomes = if lane == Lane::Background {
        "the rewritten fn enqueues a job"
    } else {
        "the rewritten fn is `async`"
    };
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            format!("{attr} cannot go on a `const fn`: {becomes}"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("{attr} cannot go on an `extern` fn; wrap the foreign fn in a plain Rust fn"),
        ));
    }
    if lane != Lane::IoBound
        && let Some(unsafety) = &sig.unsafety
    {
        errors.push(syn::Error::new_spanned(
            unsafety,
            format!(
                "{attr} cannot go on an `unsafe fn`: {}; make the fn safe and put the unsafe \
                 code in an `unsafe` block",
                if lane == Lane::Background {
                    "its body runs later, in a worker"
                } else {
                    "its body moves into a closure on another thread"
                }
            ),
        ));
    }
}

/// `#[io_bound]` is for async code, the other two make sync code awaitable.
fn asyncness(lane: Lane, sig: &Signature, errors: &mut Errors) {
    match (lane, &sig.asyncness) {
        (Lane::IoBound, None) => errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "#[io_bound] goes on an `async fn`; add `async`, or put synchronous work on \
             #[blocking] (blocking I/O) or #[cpu_bound] (computation)",
        )),
        (Lane::Blocking | Lane::CpuBound, Some(asyncness)) => {
            let runs_on = if lane == Lane::Blocking {
                "tokio's blocking pool"
            } else {
                "the CPU lane's rayon pool"
            };
            errors.push(syn::Error::new_spanned(
                asyncness,
                format!(
                    "{} runs a synchronous fn on {runs_on} and makes it awaitable; remove \
                     `async`, or use #[io_bound] for async code",
                    lane.attribute()
                ),
            ));
        }
        _ => {}
    }
}

/// The arguments move to a pool thread (or into the job store), so nothing
/// may borrow from the caller: no `&self`, no `&T` (unless `'static`, and
/// never for a stored job), no lifetime parameters.
fn owned_arguments(lane: Lane, sig: &Signature, errors: &mut Errors) {
    let rule = Owned {
        why: why_owned(lane),
        static_ok: lane != Lane::Background,
    };
    for input in &sig.inputs {
        match input {
            // `background` refuses every receiver.
            FnArg::Receiver(_) if lane == Lane::Background => {}
            FnArg::Receiver(receiver) if receiver.reference.is_some() => {
                let written = quote::ToTokens::to_token_stream(receiver).to_string();
                errors.push(syn::Error::new_spanned(
                    receiver,
                    format!(
                        "{}, so it cannot borrow `{}`; take `self` by value (a cheap clone of an \
                         `Arc`-backed handle), or use #[io_bound]",
                        rule.why,
                        written.replace("& ", "&")
                    ),
                ));
            }
            FnArg::Receiver(receiver) => rule.borrowed_types(&receiver.ty, errors),
            FnArg::Typed(typed) => rule.borrowed_types(&typed.ty, errors),
        }
    }
}

struct Owned {
    why: String,
    /// Whether `&'static T` counts as owned: it does for a thread, not for
    /// a value deserialized from the job store.
    static_ok: bool,
}

impl Owned {
    fn owned(&self) -> &'static str {
        if self.static_ok {
            "owned (`Send + 'static`)"
        } else {
            "owned"
        }
    }

    fn borrowed_types(&self, ty: &Type, errors: &mut Errors) {
        struct Borrows<'e> {
            rule: &'e Owned,
            errors: &'e mut Errors,
        }
        impl<'ast> Visit<'ast> for Borrows<'_> {
            fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
                if self.rule.static_ok && is_static(reference.lifetime.as_ref()) {
                    return syn::visit::visit_type_reference(self, reference);
                }
                let written = quote::ToTokens::to_token_stream(reference).to_string();
                self.errors.push(syn::Error::new_spanned(
                    reference,
                    format!(
                        "{}, so they must be {}; `{}` borrows from the caller, take {} \
                         instead",
                        self.rule.why,
                        self.rule.owned(),
                        tidy(&written),
                        owned_twin(reference)
                    ),
                ));
            }
            fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
                if !(self.rule.static_ok && is_static(Some(lifetime))) {
                    self.errors.push(syn::Error::new(
                        lifetime.span(),
                        format!(
                            "{}, so they must be {}; `{lifetime}` borrows from the caller, take \
                             an owned type instead",
                            self.rule.why,
                            self.rule.owned(),
                        ),
                    ));
                }
            }
        }
        Borrows { rule: self, errors }.visit_type(ty);
    }
}

fn is_static(lifetime: Option<&Lifetime>) -> bool {
    lifetime.is_some_and(|l| l.ident == "static")
}

/// The owned type to suggest for a borrowed one: `&str` -> `String`,
/// `&std::path::Path` -> `std::path::PathBuf`, `&[T]` -> `Vec<T>`.
fn owned_twin(reference: &TypeReference) -> String {
    const TWINS: &[(&str, &str)] = &[
        ("str", "String"),
        ("Path", "PathBuf"),
        ("OsStr", "OsString"),
        ("CStr", "CString"),
    ];
    let inner = tidy(&quote::ToTokens::to_token_stream(&reference.elem).to_string());
    if let Type::Slice(slice) = &*reference.elem {
        let elem = tidy(&quote::ToTokens::to_token_stream(&slice.elem).to_string());
        return format!("`Vec<{elem}>`");
    }
    let (prefix, last) = inner
        .rsplit_once("::")
        .map_or(("", inner.as_str()), |(p, l)| (p, l));
    match TWINS.iter().find(|(borrowed, _)| *borrowed == last) {
        Some((_, owned)) if prefix.is_empty() => format!("`{owned}`"),
        Some((_, owned)) => format!("`{prefix}::{owned}`"),
        None => format!("`{inner}` (or an `Arc<{inner}>` to share it)"),
    }
}

/// Token-stream text without the spaces `to_string` puts between tokens.
fn tidy(text: &str) -> String {
    text.replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace(" :: ", "::")
        .replace("[ ", "[")
        .replace(" ]", "]")
}
