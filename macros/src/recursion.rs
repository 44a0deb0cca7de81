//! Calls a `#[blocking]` or `#[cpu_bound]` fn makes to itself: `fib(..)`,
//! `Self::fib(..)`, `self.fib(..)`. Once the fn is rewritten it is `async`,
//! so each such call is a future where the body expects the value.
//!
//! Names are resolved the way rustc would within the body: a nested
//! `fn fib`, a `use .. as fib`, or a `let`, closure, `match`, `for` or
//! `if let` binding named `fib` shadows the fn for bare calls in its scope.
//! Nested items are other fns (or another `Self`), and are not entered.
//! Macro arguments that parse as expressions (`println!("{}", fib(n))`) are
//! entered, as the rule engine does.

use proc_macro2::{Ident, TokenStream};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    Arm, Block, Expr, ExprClosure, ExprForLoop, ExprIf, ExprWhile, FnArg, Item, Local, Macro, Pat,
    Signature, Stmt, Token, UseTree,
};

/// Calls `each` on every self-call of the fn `sig` in `body` (innermost
/// first), with the tokens to report it at: the called path, or the method
/// name. `each` may replace the call expression.
pub(crate) fn for_each_self_call(
    sig: &Signature,
    body: &mut Block,
    each: &mut dyn FnMut(&mut Expr, TokenStream),
) {
    let shadowed = sig.inputs.iter().any(|input| match input {
        FnArg::Typed(typed) => binds(&typed.pat, &sig.ident),
        FnArg::Receiver(_) => false,
    });
    let mut finder = SelfCalls {
        name: &sig.ident,
        shadowed,
        each,
    };
    finder.visit_block_mut(body);
}

struct SelfCalls<'a> {
    name: &'a Ident,
    /// Whether a bare `name(..)` here means something other than the fn.
    shadowed: bool,
    each: &'a mut dyn FnMut(&mut Expr, TokenStream),
}

impl SelfCalls<'_> {
    /// Runs `visit` with bare calls shadowed when `shadow` holds, then puts
    /// the outer scope back.
    fn scoped(&mut self, shadow: bool, visit: impl FnOnce(&mut Self)) {
        let outer = self.shadowed;
        self.shadowed |= shadow;
        visit(self);
        self.shadowed = outer;
    }

    /// The tokens to report `expr` at, when it is a call of the fn itself.
    fn self_call(&self, expr: &Expr) -> Option<TokenStream> {
        match expr {
            Expr::Call(call) => {
                let Expr::Path(callee) = &*call.func else {
                    return None;
                };
                if callee.qself.is_some() || callee.path.leading_colon.is_some() {
                    return None;
                }
                let segments: Vec<&Ident> = callee.path.segments.iter().map(|s| &s.ident).collect();
                let is_self_call = match segments.as_slice() {
                    [name] => *name == self.name && !self.shadowed,
                    [ty, name] => *ty == "Self" && *name == self.name,
                    _ => false,
                };
                is_self_call.then(|| callee.path.to_token_stream())
            }
            Expr::MethodCall(call) if call.method == *self.name => match &*call.receiver {
                Expr::Path(receiver)
                    if receiver.qself.is_none() && receiver.path.is_ident("self") =>
                {
                    Some(call.method.to_token_stream())
                }
                _ => None,
            },
            _ => None,
        }
    }
}

impl VisitMut for SelfCalls<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        syn::visit_mut::visit_expr_mut(self, expr);
        if let Some(callee) = self.self_call(expr) {
            (self.each)(expr, callee);
        }
    }

    fn visit_block_mut(&mut self, block: &mut Block) {
        // An item is in scope in its whole block, before its declaration too.
        let item_shadows = block.stmts.iter().any(|stmt| match stmt {
            Stmt::Item(item) => declares(item, self.name),
            _ => false,
        });
        let outer = self.shadowed;
        self.shadowed |= item_shadows;
        for stmt in &mut block.stmts {
            self.visit_stmt_mut(stmt);
        }
        self.shadowed = outer;
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        match stmt {
            // A `let` binding shadows from the next statement on; its
            // initializer and `else` still see the outer name. The caller,
            // `visit_block_mut`, restores the scope at the block's end.
            Stmt::Local(local) => {
                self.visit_local_mut(local);
                self.shadowed |= binds(&local.pat, self.name);
            }
            Stmt::Item(_) => {}
            _ => syn::visit_mut::visit_stmt_mut(self, stmt),
        }
    }

    fn visit_local_mut(&mut self, local: &mut Local) {
        if let Some(init) = &mut local.init {
            self.visit_expr_mut(&mut init.expr);
            if let Some((_, diverge)) = &mut init.diverge {
                self.visit_expr_mut(diverge);
            }
        }
    }

    fn visit_item_mut(&mut self, _: &mut Item) {}

    fn visit_expr_closure_mut(&mut self, closure: &mut ExprClosure) {
        let shadow = closure.inputs.iter().any(|pat| binds(pat, self.name));
        self.scoped(shadow, |this| this.visit_expr_mut(&mut closure.body));
    }

    fn visit_arm_mut(&mut self, arm: &mut Arm) {
        let shadow = binds(&arm.pat, self.name);
        self.scoped(shadow, |this| {
            if let Some((_, guard)) = &mut arm.guard {
                this.visit_expr_mut(guard);
            }
            this.visit_expr_mut(&mut arm.body);
        });
    }

    fn visit_expr_for_loop_mut(&mut self, for_loop: &mut ExprForLoop) {
        self.visit_expr_mut(&mut for_loop.expr);
        let shadow = binds(&for_loop.pat, self.name);
        self.scoped(shadow, |this| this.visit_block_mut(&mut for_loop.body));
    }

    fn visit_expr_if_mut(&mut self, expr_if: &mut ExprIf) {
        self.visit_expr_mut(&mut expr_if.cond);
        let shadow = condition_binds(&expr_if.cond, self.name);
        self.scoped(shadow, |this| {
            this.visit_block_mut(&mut expr_if.then_branch)
        });
        if let Some((_, else_branch)) = &mut expr_if.else_branch {
            self.visit_expr_mut(else_branch);
        }
    }

    fn visit_expr_while_mut(&mut self, expr_while: &mut ExprWhile) {
        self.visit_expr_mut(&mut expr_while.cond);
        let shadow = condition_binds(&expr_while.cond, self.name);
        self.scoped(shadow, |this| this.visit_block_mut(&mut expr_while.body));
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        let Ok(mut args) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
        else {
            return;
        };
        let mut found = false;
        let each = &mut *self.each;
        let mut inner = SelfCalls {
            name: self.name,
            shadowed: self.shadowed,
            each: &mut |expr: &mut Expr, callee| {
                found = true;
                each(expr, callee);
            },
        };
        for arg in &mut args {
            inner.visit_expr_mut(arg);
        }
        // Only a macro whose arguments changed is re-emitted from them.
        if found {
            mac.tokens = args.into_token_stream();
        }
    }
}

/// Whether `pat` binds `name`.
fn binds(pat: &Pat, name: &Ident) -> bool {
    struct Binds<'a>(&'a Ident, bool);
    impl<'ast> Visit<'ast> for Binds<'_> {
        fn visit_pat_ident(&mut self, binding: &'ast syn::PatIdent) {
            self.1 |= binding.ident == *self.0;
            syn::visit::visit_pat_ident(self, binding);
        }
        // Paths in patterns (`Some(x)`, `E::A { .. }`) name no binding.
        fn visit_path(&mut self, _: &'ast syn::Path) {}
    }
    let mut finder = Binds(name, false);
    finder.visit_pat(pat);
    finder.1
}

/// Whether an `if`/`while` condition (`let P = e`, or a `&&` chain of them)
/// binds `name` for its body.
fn condition_binds(cond: &Expr, name: &Ident) -> bool {
    match cond {
        Expr::Let(expr_let) => binds(&expr_let.pat, name),
        Expr::Binary(binary) if matches!(binary.op, syn::BinOp::And(_)) => {
            condition_binds(&binary.left, name) || condition_binds(&binary.right, name)
        }
        Expr::Paren(paren) => condition_binds(&paren.expr, name),
        _ => false,
    }
}

/// Whether `item` puts `name` in scope as something callable: a fn, a
/// `use` of that name, or a `const`/`static` (a fn pointer).
fn declares(item: &Item, name: &Ident) -> bool {
    fn use_declares(tree: &UseTree, name: &Ident) -> bool {
        match tree {
            UseTree::Path(path) => use_declares(&path.tree, name),
            UseTree::Name(used) => used.ident == *name,
            UseTree::Rename(rename) => rename.rename == *name,
            UseTree::Glob(_) => false,
            UseTree::Group(group) => group.items.iter().any(|tree| use_declares(tree, name)),
        }
    }
    match item {
        Item::Fn(func) => func.sig.ident == *name,
        Item::Use(item_use) => use_declares(&item_use.tree, name),
        Item::Const(item) => item.ident == *name,
        Item::Static(item) => item.ident == *name,
        _ => false,
    }
}
