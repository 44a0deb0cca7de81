//! Implementation detail of the `lanes` crate: the attribute macros. Their
//! documentation lives on the re-exports in `lanes`.
//!
//! Each entry point is one line; [`entry::expand`] drives
//! parse -> validate -> expand for every lane.

mod args;
mod background;
mod entry;
mod errors;
mod expand;
mod item;
mod lane;
mod pattern;
mod private;
mod recursion;
mod valid;

use lane::Lane;
use proc_macro::TokenStream;

#[proc_macro_attribute]
pub fn io_bound(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::IoBound, args.into(), item.into()).into()
}

#[proc_macro_attribute]
pub fn blocking(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::Blocking, args.into(), item.into()).into()
}

#[proc_macro_attribute]
pub fn cpu_bound(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::CpuBound, args.into(), item.into()).into()
}

#[proc_macro_attribute]
pub fn background(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(Lane::Background, args.into(), item.into()).into()
}

#[cfg(test)]
mod tests;
