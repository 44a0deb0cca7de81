//! Signature rules, one fn each, shared by the lanes.

use syn::visit::Visit;
use syn::{FnArg, Lifetime, Signature, Type, TypeReference};

use crate::Lane;
use crate::errors::Errors;

pub(crate) fn signature(lane: Lane, sig: &Signature, errors: &mut Errors) {
    qualifiers(lane, sig, errors);
    asyncness(lane, sig, errors);
    if lane != Lane::IoBound {
        owned_arguments(lane, sig, errors);
    }
}

/// `const`, `unsafe` and `extern` have no meaning once the body runs on
/// another thread behind an `async fn`.
fn qualifiers(lane: Lane, sig: &Signature, errors: &mut Errors) {
    let attr = lane.attribute();
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            format!("{attr} cannot go on a `const fn`: the rewritten fn is `async`"),
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
                "{attr} cannot go on an `unsafe fn`: its body moves into a closure on another \
                 thread; make the fn safe and put the unsafe code in an `unsafe` block"
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

/// The arguments move to a pool thread, so nothing may borrow from the
/// caller: no `&self`, no `&T` (unless `'static`), no lifetime parameters.
fn owned_arguments(lane: Lane, sig: &Signature, errors: &mut Errors) {
    let attr = lane.attribute();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) if receiver.reference.is_some() => {
                let written = quote::ToTokens::to_token_stream(receiver).to_string();
                errors.push(syn::Error::new_spanned(
                    receiver,
                    format!(
                        "{attr} moves its arguments to another thread, so it cannot borrow \
                         `{}`; take `self` by value (a cheap clone of an `Arc`-backed handle), \
                         or use #[io_bound]",
                        written.replace("& ", "&")
                    ),
                ));
            }
            FnArg::Receiver(receiver) => borrowed_types(attr, &receiver.ty, errors),
            FnArg::Typed(typed) => borrowed_types(attr, &typed.ty, errors),
        }
    }
}

fn borrowed_types(attr: &str, ty: &Type, errors: &mut Errors) {
    struct Borrows<'e> {
        attr: &'e str,
        errors: &'e mut Errors,
    }
    impl<'ast> Visit<'ast> for Borrows<'_> {
        fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
            if is_static(reference.lifetime.as_ref()) {
                return syn::visit::visit_type_reference(self, reference);
            }
            let written = quote::ToTokens::to_token_stream(reference).to_string();
            self.errors.push(syn::Error::new_spanned(
                reference,
                format!(
                    "{} moves its arguments to another thread, so they must be owned \
                     (`Send + 'static`); `{}` borrows from the caller, take {} instead",
                    self.attr,
                    tidy(&written),
                    owned_twin(reference)
                ),
            ));
        }
        fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
            if !is_static(Some(lifetime)) {
                self.errors.push(syn::Error::new(
                    lifetime.span(),
                    format!(
                        "{} moves its arguments to another thread, so they must be owned \
                         (`Send + 'static`); `{lifetime}` borrows from the caller, take an \
                         owned type instead",
                        self.attr,
                    ),
                ));
            }
        }
    }
    Borrows { attr, errors }.visit_type(ty);
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
