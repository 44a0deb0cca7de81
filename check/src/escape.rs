//! The statement-level escape hatch:
//! `#[lanes::allow_blocking("read once at start-up, before serving")]`.
//!
//! A reason is required, so that every exception says why it is safe.

use syn::{Attribute, Expr, LitStr, Stmt};

/// The attribute's name, without and with the crate prefix.
const NAME: &str = "allow_blocking";

/// `attr` is `#[allow_blocking(..)]` or `#[lanes::allow_blocking(..)]`.
pub fn is_allow_attr(attr: &Attribute) -> bool {
    let segments: Vec<_> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    match segments.as_slice() {
        [name] => name == NAME,
        [krate, name] => krate == "lanes" && name == NAME,
        _ => false,
    }
}

/// The escape hatch on this statement, if any: `Ok(())` when it carries a
/// written reason, the error otherwise.
pub(crate) fn statement_allow(stmt: &Stmt) -> Option<syn::Result<()>> {
    let attrs = stmt_attrs(stmt)?;
    let attr = attrs.iter().find(|a| is_allow_attr(a))?;
    Some(check_reason(attr))
}

fn check_reason(attr: &Attribute) -> syn::Result<()> {
    let usage = "`#[lanes::allow_blocking]` needs a written reason: \
                 `#[lanes::allow_blocking(\"why this call cannot stall the server\")]`";
    let reason: LitStr = attr
        .parse_args()
        .map_err(|_| syn::Error::new_spanned(attr, usage))?;
    if reason.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(reason, usage));
    }
    Ok(())
}

/// Removes every escape-hatch attribute from a body, so that rustc, which does
/// not know them, never sees them.
pub fn strip_allow_attrs(block: &mut syn::Block) {
    use syn::visit_mut::VisitMut;
    struct Strip;
    impl VisitMut for Strip {
        fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
            if let Some(attrs) = stmt_attrs_mut(stmt) {
                attrs.retain(|a| !is_allow_attr(a));
            }
            syn::visit_mut::visit_stmt_mut(self, stmt);
        }
    }
    Strip.visit_block_mut(block);
}

/// Generates the shared and the `mut` accessor for the attributes written
/// before a statement, from one list of the expression kinds that carry them.
/// syn puts the attributes of `#[a] x = y;` on the leftmost operand.
macro_rules! attr_accessors {
    ($stmt_fn:ident, $expr_fn:ident, $borrow:ident, $($ref:tt)+) => {
        fn $stmt_fn(stmt: $($ref)+ Stmt) -> Option<$($ref)+ Vec<Attribute>> {
            match stmt {
                Stmt::Local(local) => Some($($ref)+ local.attrs),
                Stmt::Macro(mac) => Some($($ref)+ mac.attrs),
                Stmt::Expr(expr, _) => $expr_fn(expr),
                Stmt::Item(_) => None,
            }
        }

        fn $expr_fn(expr: $($ref)+ Expr) -> Option<$($ref)+ Vec<Attribute>> {
            attr_accessors!(@match expr, $expr_fn, $borrow,
                Await, Block, Call, Field, ForLoop, If, Index, Let, Loop, Macro, Match,
                MethodCall, Paren, Path, Reference, Return, Try, Unary, Unsafe, While)
        }
    };
    (@match $expr:ident, $expr_fn:ident, $borrow:ident, $($variant:ident),*) => {
        match $expr {
            Expr::Assign(e) => $expr_fn($borrow!(e.left)),
            Expr::Binary(e) => $expr_fn($borrow!(e.left)),
            Expr::Cast(e) => $expr_fn($borrow!(e.expr)),
            $(Expr::$variant(e) => Some($borrow!(e.attrs)),)*
            _ => None,
        }
    };
}

macro_rules! shared {
    ($place:expr) => {
        &$place
    };
}

macro_rules! exclusive {
    ($place:expr) => {
        &mut $place
    };
}

attr_accessors!(stmt_attrs, expr_attrs, shared, &);
attr_accessors!(stmt_attrs_mut, expr_attrs_mut, exclusive, &mut);
