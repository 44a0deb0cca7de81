//! What in a file runs on a tokio worker: `async fn`s, and async blocks and
//! closures inside sync code; and which fns are axum handlers or middleware.

use std::borrow::Cow;
use std::collections::HashMap;

use syn::visit::{self, Visit};
use syn::{Block, Expr, ImplItemFn, ItemFn, ItemImpl, Signature, Stmt, TraitItemFn};

/// A body that runs on a tokio worker.
pub(crate) struct AsyncBody<'ast> {
    /// The enclosing fn, `Type::method` for methods.
    pub(crate) function: String,
    /// The body itself is an `async fn`'s (rather than an async block's).
    pub(crate) is_async_fn: bool,
    pub(crate) line: usize,
    /// The `async fn`'s signature, for its arguments' types.
    pub(crate) sig: Option<&'ast Signature>,
    /// Borrowed from the file; owned only for a closure whose body is an
    /// expression rather than a block.
    pub(crate) block: Cow<'ast, Block>,
}

/// Lists the bodies of `file` that run on a tokio worker, skipping fns that
/// carry a lanes attribute (the compiler checks those).
pub(crate) fn async_bodies(file: &syn::File) -> Vec<AsyncBody<'_>> {
    let mut finder = Finder {
        bodies: Vec::new(),
        impl_type: Vec::new(),
        function: Vec::new(),
        inside_async: false,
    };
    finder.visit_file(file);
    finder.bodies
}

struct Finder<'ast> {
    bodies: Vec<AsyncBody<'ast>>,
    impl_type: Vec<String>,
    function: Vec<String>,
    /// Inside a body already listed: its async blocks are checked with it.
    inside_async: bool,
}

fn has_lane_attribute(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().segments.last().is_some_and(|s| {
            ["io_bound", "blocking", "cpu_bound"]
                .iter()
                .any(|lane| s.ident == lane)
        })
    })
}

impl<'ast> Finder<'ast> {
    fn function(&mut self, attrs: &[syn::Attribute], sig: &'ast Signature, block: &'ast Block) {
        if has_lane_attribute(attrs) {
            return;
        }
        let name = match self.impl_type.last() {
            Some(ty) => format!("{ty}::{}", sig.ident),
            None => sig.ident.to_string(),
        };
        let line = sig.fn_token.span.start().line;
        let was_inside = self.inside_async;
        if sig.asyncness.is_some() {
            self.bodies.push(AsyncBody {
                function: name.clone(),
                is_async_fn: true,
                line,
                sig: Some(sig),
                block: Cow::Borrowed(block),
            });
            self.inside_async = true;
        } else {
            // A sync fn nested in an async body runs wherever it is called.
            self.inside_async = false;
        }
        self.function.push(name);
        self.visit_block(block);
        self.function.pop();
        self.inside_async = was_inside;
    }

    fn async_block(&mut self, block: Cow<'ast, Block>, line: usize) {
        let function = self
            .function
            .last()
            .cloned()
            .unwrap_or_else(|| "<top level>".to_owned());
        self.bodies.push(AsyncBody {
            function,
            is_async_fn: false,
            line,
            sig: None,
            block,
        });
    }
}

impl<'ast> Visit<'ast> for Finder<'ast> {
    fn visit_item_fn(&mut self, item: &'ast ItemFn) {
        self.function(&item.attrs, &item.sig, &item.block);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast ImplItemFn) {
        self.function(&item.attrs, &item.sig, &item.block);
    }

    fn visit_trait_item_fn(&mut self, item: &'ast TraitItemFn) {
        if let Some(block) = &item.default {
            self.function(&item.attrs, &item.sig, block);
        }
    }

    fn visit_item_impl(&mut self, item: &'ast ItemImpl) {
        let ty = match &*item.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        self.impl_type
            .push(ty.unwrap_or_else(|| "<impl>".to_owned()));
        visit::visit_item_impl(self, item);
        self.impl_type.pop();
    }

    fn visit_expr_async(&mut self, expr: &'ast syn::ExprAsync) {
        if self.inside_async {
            return visit::visit_expr_async(self, expr);
        }
        self.async_block(
            Cow::Borrowed(&expr.block),
            expr.async_token.span.start().line,
        );
        self.inside_async = true;
        visit::visit_expr_async(self, expr);
        self.inside_async = false;
    }

    fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
        let Some(asyncness) = closure.asyncness.filter(|_| !self.inside_async) else {
            return visit::visit_expr_closure(self, closure);
        };
        let block = match &*closure.body {
            Expr::Block(body) => Cow::Borrowed(&body.block),
            body => Cow::Owned(Block {
                brace_token: Default::default(),
                stmts: vec![Stmt::Expr(body.clone(), None)],
            }),
        };
        self.async_block(block, asyncness.span.start().line);
        self.inside_async = true;
        visit::visit_expr_closure(self, closure);
        self.inside_async = false;
    }
}

/// The HTTP methods of axum's routing functions (`get(h)`, `.post(h)`).
const METHODS: &[&str] = &[
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect", "any",
];

/// What the router makes of each fn, by name: `handler for GET /users/{id}`,
/// `middleware`.
pub(crate) fn router_roles(file: &syn::File, roles: &mut HashMap<String, Vec<String>>) {
    struct Routes<'r>(&'r mut HashMap<String, Vec<String>>);

    fn last_segment(expr: &Expr) -> Option<String> {
        match expr {
            Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        }
    }

    impl Routes<'_> {
        fn add(&mut self, handler: &Expr, role: String) {
            if let Some(name) = last_segment(handler) {
                let roles = self.0.entry(name).or_default();
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }

        /// `get(h)`, `get(h).post(h2)`, `on(MethodFilter::PUT, h)`.
        fn method_router(&mut self, path: &str, expr: &Expr) {
            match expr {
                Expr::Call(call) => {
                    let Some(func) = last_segment(&call.func) else {
                        return;
                    };
                    if METHODS.contains(&func.as_str()) && call.args.len() == 1 {
                        self.add(
                            &call.args[0],
                            format!("handler for {} {path}", func.to_uppercase()),
                        );
                    } else if func == "on" && call.args.len() == 2 {
                        self.add(&call.args[1], format!("handler for {path}"));
                    }
                }
                Expr::MethodCall(call) => {
                    let method = call.method.to_string();
                    if METHODS.contains(&method.as_str()) && call.args.len() == 1 {
                        self.add(
                            &call.args[0],
                            format!("handler for {} {path}", method.to_uppercase()),
                        );
                    }
                    self.method_router(path, &call.receiver);
                }
                _ => {}
            }
        }
    }

    impl<'ast> Visit<'ast> for Routes<'_> {
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if call.method == "route" && call.args.len() == 2 {
                let path = match &call.args[0] {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(path),
                        ..
                    }) => path.value(),
                    _ => "<dynamic path>".to_owned(),
                };
                self.method_router(&path, &call.args[1]);
            }
            visit::visit_expr_method_call(self, call);
        }

        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            let func = last_segment(&call.func);
            if matches!(func.as_deref(), Some("from_fn" | "from_fn_with_state"))
                && let Some(last) = call.args.last()
            {
                self.add(last, "middleware".to_owned());
            }
            visit::visit_expr_call(self, call);
        }
    }

    Routes(roles).visit_file(file);
}
