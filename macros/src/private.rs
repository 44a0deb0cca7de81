//! The one place that spells a path into the runtime crate.

use proc_macro2::TokenStream;
use quote::quote;

/// `::lanes::__private`, the hidden module generated code calls into.
pub(crate) fn path() -> TokenStream {
    quote!(::lanes::__private)
}
