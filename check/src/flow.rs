//! Where a body's values go, read before the body is checked: which local
//! names hold a future that is awaited (directly, selected, joined,
//! spawned, pinned) and which hold a closure that is offloaded.

use std::collections::HashSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Expr, ExprCall, ExprMethodCall};

use crate::rules::{self, FUTURE_CONSUMERS, OFFLOADERS, OFFLOADING_METHODS};

/// The names of a body that are used as futures or as offloaded closures.
#[derive(Debug, Default)]
pub(crate) struct Flows {
    pub(crate) awaited: HashSet<String>,
    pub(crate) offloaded: HashSet<String>,
    /// Names used inside the closures handed to an offloader: a fn whose
    /// closure argument is called there offloads that argument.
    pub(crate) used_offloaded: HashSet<String>,
}

/// A local name, possibly borrowed or pinned on the way: `f`, `&mut f`,
/// `f.as_mut()`.
pub(crate) fn local_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            Some(p.path.segments[0].ident.to_string())
        }
        Expr::Reference(r) => local_name(&r.expr),
        Expr::Paren(p) => local_name(&p.expr),
        Expr::MethodCall(m) if m.method == "as_mut" && m.args.is_empty() => local_name(&m.receiver),
        _ => None,
    }
}

/// The last segment of a call's written path.
fn last_segment(func: &Expr) -> Option<String> {
    match func {
        Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// `offload` paths from `lanes.toml` and the built-in offloaders.
pub(crate) fn is_offloader(written: &[String], extra: &[String]) -> bool {
    OFFLOADERS
        .iter()
        .any(|(pattern, min)| rules::path_matches(written, pattern, *min))
        || extra.iter().any(|entry| {
            let pattern: Vec<&str> = entry.split("::").collect();
            !entry.starts_with('.')
                && (rules::path_matches(written, &pattern, pattern.len().min(2))
                    || rules::path_ends_with(written, &pattern))
        })
}

pub(crate) fn is_offloading_method(name: &str, extra: &[String]) -> bool {
    OFFLOADING_METHODS.contains(&name)
        || extra
            .iter()
            .any(|entry| entry.strip_prefix('.') == Some(name))
}

/// Reads `block` for [`Flows`].
pub(crate) fn flows(block: &syn::Block, offload: &[String]) -> Flows {
    struct Reader<'o> {
        flows: Flows,
        offload: &'o [String],
    }
    impl Reader<'_> {
        /// An argument of an offloader: a name bound to a closure, or a
        /// closure whose body uses names.
        fn offloaded_argument(&mut self, arg: &Expr) {
            if let Some(name) = local_name(arg) {
                self.flows.offloaded.insert(name);
            } else if let Expr::Closure(closure) = arg {
                struct Names<'f>(&'f mut HashSet<String>);
                impl<'ast> Visit<'ast> for Names<'_> {
                    fn visit_ident(&mut self, ident: &'ast syn::Ident) {
                        self.0.insert(ident.to_string());
                    }
                }
                Names(&mut self.flows.used_offloaded).visit_expr(&closure.body);
            }
        }
        fn awaited(&mut self, expr: &Expr) {
            if let Some(name) = local_name(expr) {
                self.flows.awaited.insert(name);
            }
        }
        /// The names in a macro's tokens that it awaits: every identifier
        /// standing alone between separators (`join!(a, b)`, `pin!(f)`,
        /// `select! { x = f => .. }`).
        fn awaited_tokens(&mut self, tokens: TokenStream) {
            let trees: Vec<TokenTree> = tokens.into_iter().collect();
            for (i, tree) in trees.iter().enumerate() {
                match tree {
                    TokenTree::Ident(ident) => {
                        let separated = |t: Option<&TokenTree>| match t {
                            None => true,
                            Some(TokenTree::Punct(p)) => {
                                matches!(p.as_char(), ',' | '=' | '>' | '&')
                            }
                            Some(TokenTree::Ident(i)) => i == "mut",
                            _ => false,
                        };
                        let before = i.checked_sub(1).and_then(|j| trees.get(j));
                        let after = trees.get(i + 1);
                        let after_ok = match after {
                            None => true,
                            Some(TokenTree::Punct(p)) => matches!(p.as_char(), ',' | '='),
                            _ => false,
                        };
                        if separated(before) && after_ok {
                            self.flows.awaited.insert(ident.to_string());
                        }
                    }
                    TokenTree::Group(group) => self.awaited_tokens(group.stream()),
                    _ => {}
                }
            }
        }
    }
    impl<'ast> Visit<'ast> for Reader<'_> {
        fn visit_expr_await(&mut self, e: &'ast syn::ExprAwait) {
            self.awaited(&e.base);
            visit::visit_expr_await(self, e);
        }
        fn visit_expr_call(&mut self, call: &'ast ExprCall) {
            let written = match &*call.func {
                Expr::Path(p) => crate::resolve::written(&p.path),
                _ => Vec::new(),
            };
            if is_offloader(&written, self.offload) {
                for arg in &call.args {
                    self.offloaded_argument(arg);
                }
            } else if last_segment(&call.func)
                .is_some_and(|name| FUTURE_CONSUMERS.contains(&name.as_str()))
            {
                for arg in &call.args {
                    self.awaited(arg);
                }
            }
            visit::visit_expr_call(self, call);
        }
        fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
            let name = call.method.to_string();
            for arg in &call.args {
                if is_offloading_method(&name, self.offload) {
                    self.offloaded_argument(arg);
                }
                if FUTURE_CONSUMERS.contains(&name.as_str())
                    && let Some(local) = local_name(arg)
                {
                    self.flows.awaited.insert(local);
                }
            }
            visit::visit_expr_method_call(self, call);
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            let name = mac.path.segments.last().map(|s| s.ident.to_string());
            if matches!(
                name.as_deref(),
                Some("join" | "try_join" | "select" | "select_biased" | "pin" | "pin_mut")
            ) {
                self.awaited_tokens(mac.tokens.clone());
            }
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut reader = Reader {
        flows: Flows::default(),
        offload,
    };
    reader.visit_block(block);
    reader.flows
}
