//! The one place that spells a path into the runtime crate.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

/// `::lanes::__private`, the hidden module generated code calls into, with
/// its tokens at `span` (where rustc should report a bound of the callee).
pub(crate) fn path(span: Span) -> TokenStream {
    quote_spanned!(span=> ::lanes::__private)
}
