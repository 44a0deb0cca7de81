//! What in a file runs on a tokio worker: `async fn`s, and async blocks and
//! closures inside sync code; and where each runs: in test code, at
//! start-up, or wherever its router, spawn or middleware puts it.

use std::borrow::Cow;
use std::collections::HashMap;

use proc_macro2::LineColumn;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{
    Attribute, Block, Expr, ImplItemFn, Item, ItemFn, ItemImpl, Meta, Signature, Stmt, Token,
    TraitItemFn,
};

use crate::Context;
use crate::routes::{self, NamedRole, Naming, Role, Route, in_place_start, peel, segments};

/// A body that runs on a tokio worker.
pub(crate) struct AsyncBody<'ast> {
    /// The enclosing fn, `Type::method` for methods.
    pub(crate) function: String,
    /// An `async fn`'s signature, for its arguments' types.
    pub(crate) sig: Option<&'ast Signature>,
    /// Borrowed from the file; owned only for a closure whose body is an
    /// expression rather than a block.
    pub(crate) block: Cow<'ast, Block>,
    /// The body as a whole.
    pub(crate) whole: Piece,
    /// Stretches of the body that run in another context than the rest: a
    /// block handed to `tokio::spawn`, a closure handed to `get(..)`, main
    /// before its server starts. The rule engine checks them with the body,
    /// and each finding goes to the innermost stretch that holds it.
    pub(crate) parts: Vec<Part>,
}

/// What the report says of a body or of one of its parts.
pub(crate) struct Piece {
    /// The code is an `async fn`'s body (rather than an async block's).
    pub(crate) is_async_fn: bool,
    /// Where it starts.
    pub(crate) line: usize,
    pub(crate) awaits: bool,
    pub(crate) place: Place,
}

pub(crate) struct Part {
    from: LineColumn,
    /// Just past the stretch.
    to: LineColumn,
    pub(crate) piece: Piece,
}

impl AsyncBody<'_> {
    /// The innermost part that holds `at`, by its index in `parts`.
    pub(crate) fn part_holding(&self, at: LineColumn) -> Option<usize> {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, part)| part.from <= at && at < part.to)
            .max_by_key(|(_, part)| part.from)
            .map(|(index, _)| index)
    }
}

/// Where a body runs, as far as its own file tells.
#[derive(Debug)]
pub(crate) struct Place {
    pub(crate) in_test: bool,
    pub(crate) whose: Whose,
}

#[derive(Debug)]
pub(crate) enum Whose {
    /// Code that has no name of its own (a closure handed to `get(..)`, a
    /// block handed to `tokio::spawn`, main's start-up): its roles are all
    /// known where it is written.
    InPlace(Vec<Role>),
    /// The code of a fn, or of an async block in one: the routers, spawns
    /// and middleware of every file name the fn, and its own attributes may
    /// declare routes.
    Fn { routes: Vec<Route> },
}

impl Place {
    /// The context and the roles' labels, given the roles that every file
    /// gives the fn by name.
    pub(crate) fn resolve(self, named: &[&NamedRole]) -> (Context, Vec<String>) {
        let roles = match self.whose {
            Whose::InPlace(roles) => roles,
            Whose::Fn { routes } => fn_roles(&routes, named),
        };
        let context = if self.in_test {
            Context::Test
        } else {
            roles
                .iter()
                .map(|role| role.context)
                .min()
                .unwrap_or(Context::Async)
        };
        let mut labels = Vec::new();
        for label in roles.into_iter().filter_map(|role| role.label) {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        (context, labels)
    }
}

/// A fn's roles: the routes its attributes declare, under the prefix of
/// each scope it is mounted in, and what routers, spawns and middleware
/// make of it.
fn fn_roles(routes: &[Route], named: &[&NamedRole]) -> Vec<Role> {
    let mut prefixes: Vec<&str> = named
        .iter()
        .filter_map(|role| match &role.naming {
            Naming::Mounted { prefix } => Some(prefix.as_str()),
            Naming::Role(_) => None,
        })
        .collect();
    if prefixes.is_empty() {
        prefixes.push("");
    }
    let declared = routes
        .iter()
        .flat_map(|route| prefixes.iter().map(|prefix| route.role(prefix)));
    let given = named.iter().filter_map(|role| match &role.naming {
        Naming::Role(role) => Some(role.clone()),
        Naming::Mounted { .. } => None,
    });
    declared.chain(given).collect()
}

/// Lists the bodies of `file` that run on a tokio worker, skipping fns that
/// carry a lanes attribute (the compiler checks those). `in_place` gives
/// the roles of the closures and blocks its routers and spawns hold;
/// `in_test_folder` puts the whole file in test code.
pub(crate) fn async_bodies<'ast>(
    file: &'ast syn::File,
    in_place: &HashMap<LineColumn, Vec<Role>>,
    in_test_folder: bool,
) -> Vec<AsyncBody<'ast>> {
    let mut finder = Finder {
        bodies: Vec::new(),
        in_place,
        impl_type: Vec::new(),
        function: Vec::new(),
        current: None,
        in_test: in_test_folder,
        in_sync_main: false,
        runtime_entry: None,
    };
    finder.visit_file(file);
    finder.bodies
}

struct Finder<'ast, 'r> {
    bodies: Vec<AsyncBody<'ast>>,
    in_place: &'r HashMap<LineColumn, Vec<Role>>,
    impl_type: Vec<String>,
    function: Vec<String>,
    /// The listed body the visit is inside, by index: its async blocks are
    /// checked with it.
    current: Option<usize>,
    in_test: bool,
    /// Inside a sync `fn main`, whose `block_on(async { .. })` is the
    /// program's async main.
    in_sync_main: bool,
    /// Where the async block that a sync main hands to `block_on` starts.
    runtime_entry: Option<LineColumn>,
}

fn has_lane_attribute(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().segments.last().is_some_and(|s| {
            ["io_bound", "blocking", "cpu_bound"]
                .iter()
                .any(|lane| s.ident == lane)
        })
    })
}

/// `#[test]`, `#[tokio::test]`, `#[sqlx::test]`, .. or `#[cfg(test)]`.
fn is_test_code(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "test")
            || is_cfg_test(attr)
    })
}

/// `#[cfg(test)]`, `#[cfg(all(test, ..))]`: code compiled for tests only.
fn is_cfg_test(attr: &Attribute) -> bool {
    fn only_under_test(meta: &Meta) -> bool {
        match meta {
            Meta::Path(path) => path.is_ident("test"),
            Meta::List(list) if list.path.is_ident("all") => list
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|all| all.iter().any(only_under_test)),
            _ => false,
        }
    }
    attr.path().is_ident("cfg") && attr.parse_args::<Meta>().is_ok_and(|m| only_under_test(&m))
}

/// The attributes of the items that can hold code.
fn code_item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(item) => &item.attrs,
        Item::Fn(item) => &item.attrs,
        Item::Impl(item) => &item.attrs,
        Item::Mod(item) => &item.attrs,
        Item::Static(item) => &item.attrs,
        Item::Trait(item) => &item.attrs,
        _ => &[],
    }
}

/// A statement from which the server runs: it calls `axum::serve(..)` or
/// `.serve(..)`, builds an actix-web `HttpServer::new(..)`, or `.run()`s a
/// server built elsewhere.
fn starts_server(stmt: &Stmt) -> bool {
    struct Serves(bool);
    impl<'ast> Visit<'ast> for Serves {
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let Expr::Path(path) = peel(&call.func) {
                self.0 |= match segments(&path.path).as_slice() {
                    [.., last] if last == "serve" => true,
                    [.., server, new] => server == "HttpServer" && new == "new",
                    _ => false,
                };
            }
            visit::visit_expr_call(self, call);
        }
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            self.0 |= call.method == "serve" || (call.method == "run" && call.args.is_empty());
            visit::visit_expr_method_call(self, call);
        }
        fn visit_item(&mut self, _: &'ast Item) {}
    }
    let mut serves = Serves(false);
    serves.visit_stmt(stmt);
    serves.0
}

/// The start-up of a program's async main: its statements before the one
/// that starts the server. `None` when no statement is seen to start one:
/// what main then runs could be the program's real work.
fn start_up(block: &Block, is_async_fn: bool, line: usize, in_test: bool) -> Option<Part> {
    let serve = block.stmts.iter().find(|stmt| starts_server(stmt))?;
    Some(Part {
        from: block.brace_token.span.open().start(),
        to: serve.span().start(),
        piece: Piece {
            is_async_fn,
            line,
            awaits: lanes_check::awaits(block),
            place: Place {
                in_test,
                whose: Whose::InPlace(vec![Role::start_up()]),
            },
        },
    })
}

/// The body of a closure as a block.
fn closure_block(closure: &syn::ExprClosure) -> Cow<'_, Block> {
    match &*closure.body {
        Expr::Block(body) => Cow::Borrowed(&body.block),
        body => Cow::Owned(Block {
            brace_token: Default::default(),
            stmts: vec![Stmt::Expr(body.clone(), None)],
        }),
    }
}

/// Code that can be written where it is handed over.
#[derive(Clone, Copy)]
enum Code<'ast> {
    Async(&'ast syn::ExprAsync),
    Closure(&'ast syn::ExprClosure),
}

impl<'ast> Code<'ast> {
    fn of(expr: &'ast Expr) -> Option<Code<'ast>> {
        match expr {
            Expr::Async(block) => Some(Code::Async(block)),
            Expr::Closure(closure) => Some(Code::Closure(closure)),
            _ => None,
        }
    }

    fn is_async(self) -> bool {
        match self {
            Code::Async(_) => true,
            Code::Closure(closure) => closure.asyncness.is_some(),
        }
    }

    /// Just past its end.
    fn end(self) -> LineColumn {
        match self {
            Code::Async(block) => block.block.brace_token.span.close().end(),
            Code::Closure(closure) => closure.body.span().end(),
        }
    }

    /// Its body as a block, and the line it starts on (an async closure's
    /// `async`, `start` otherwise).
    fn body(self, start: LineColumn) -> (Cow<'ast, Block>, usize) {
        match self {
            Code::Async(block) => (Cow::Borrowed(&block.block), start.line),
            Code::Closure(closure) => {
                let line = closure
                    .asyncness
                    .map_or(start.line, |a| a.span.start().line);
                (closure_block(closure), line)
            }
        }
    }

    /// It awaits something itself, not only in the closures and blocks it
    /// holds; a closure whose body is an async block awaits what it does.
    fn awaits(self) -> bool {
        let block = match self {
            Code::Async(block) => &block.block,
            Code::Closure(closure) => match peel(&closure.body) {
                Expr::Async(inner) => &inner.block,
                Expr::Block(inner) => &inner.block,
                _ => return false,
            },
        };
        lanes_check::awaits(block)
    }
}

impl<'ast> Finder<'ast, '_> {
    fn function(&mut self, attrs: &[Attribute], sig: &'ast Signature, block: &'ast Block) {
        if has_lane_attribute(attrs) {
            return;
        }
        let is_main = sig.ident == "main" && self.impl_type.is_empty() && self.function.is_empty();
        let name = match self.impl_type.last() {
            Some(ty) => format!("{ty}::{}", sig.ident),
            None => sig.ident.to_string(),
        };
        let line = sig.fn_token.span.start().line;
        let (was_current, was_test, was_sync_main) =
            (self.current, self.in_test, self.in_sync_main);
        self.in_test |= is_test_code(attrs);
        self.in_sync_main = is_main && sig.asyncness.is_none();
        if sig.asyncness.is_some() {
            let place = Place {
                in_test: self.in_test,
                whose: Whose::Fn {
                    routes: routes::declared(attrs),
                },
            };
            let parts = is_main
                .then(|| start_up(block, true, line, self.in_test))
                .flatten()
                .into_iter()
                .collect();
            self.current = Some(self.list(AsyncBody {
                function: name.clone(),
                sig: Some(sig),
                block: Cow::Borrowed(block),
                whole: Piece {
                    is_async_fn: true,
                    line,
                    awaits: lanes_check::awaits(block),
                    place,
                },
                parts,
            }));
        } else {
            // A sync fn nested in an async body runs wherever it is called.
            self.current = None;
        }
        self.function.push(name);
        self.visit_block(block);
        self.function.pop();
        (self.current, self.in_test, self.in_sync_main) = (was_current, was_test, was_sync_main);
    }

    fn list(&mut self, body: AsyncBody<'ast>) -> usize {
        self.bodies.push(body);
        self.bodies.len() - 1
    }

    /// An async block, or a closure, met in the visit: a body of its own
    /// in sync code when it is async or handed over (`wrap_fn(|req, srv|
    /// ..)` runs on the worker too), a part of the current body when
    /// handed over inside one.
    fn code_in_place(&mut self, expr: &'ast Expr, code: Code<'ast>) {
        let Some(start) = in_place_start(expr) else {
            return visit::visit_expr(self, expr);
        };
        let roles = self.in_place.get(&start);
        match (self.current, roles) {
            (Some(current), Some(roles)) => {
                let part = Part {
                    from: start,
                    to: code.end(),
                    piece: Piece {
                        is_async_fn: false,
                        line: start.line,
                        awaits: code.awaits(),
                        place: self.place(Whose::InPlace(roles.clone())),
                    },
                };
                self.bodies[current].parts.push(part);
            }
            (None, _) if roles.is_some() || code.is_async() => {
                let whose = match roles {
                    Some(roles) => Whose::InPlace(roles.clone()),
                    None => Whose::Fn { routes: Vec::new() },
                };
                let body = self.body_in_place(code, start, whose);
                let was_current = self.current;
                self.current = Some(self.list(body));
                visit::visit_expr(self, expr);
                self.current = was_current;
                return;
            }
            _ => {}
        }
        visit::visit_expr(self, expr);
    }

    fn place(&self, whose: Whose) -> Place {
        Place {
            in_test: self.in_test,
            whose,
        }
    }

    /// A closure or async block of sync code, starting at `start`, as a
    /// body.
    fn body_in_place(&self, code: Code<'ast>, start: LineColumn, whose: Whose) -> AsyncBody<'ast> {
        let (block, line) = code.body(start);
        let parts = (self.runtime_entry == Some(start))
            .then(|| start_up(&block, false, line, self.in_test))
            .flatten()
            .into_iter()
            .collect();
        let function = self
            .function
            .last()
            .cloned()
            .unwrap_or_else(|| "<top level>".to_owned());
        AsyncBody {
            function,
            sig: None,
            whole: Piece {
                is_async_fn: false,
                line,
                awaits: lanes_check::awaits(&block),
                place: self.place(whose),
            },
            block,
            parts,
        }
    }

    /// `block_on(async { .. })` in a sync main: that block is where the
    /// program's async code starts.
    fn note_runtime_entry(&mut self, function: &str, args: &Punctuated<Expr, Token![,]>) {
        if self.in_sync_main && self.current.is_none() && function == "block_on" {
            let entry = args
                .iter()
                .map(peel)
                .find(|arg| matches!(arg, Expr::Async(_)));
            if let Some(entry) = entry {
                self.runtime_entry = in_place_start(entry);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Finder<'ast, '_> {
    fn visit_item(&mut self, item: &'ast Item) {
        let was_test = self.in_test;
        self.in_test |= code_item_attrs(item).iter().any(is_cfg_test);
        visit::visit_item(self, item);
        self.in_test = was_test;
    }

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

    fn visit_expr(&mut self, expr: &'ast Expr) {
        match Code::of(expr) {
            Some(code) => self.code_in_place(expr, code),
            None => visit::visit_expr(self, expr),
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        self.note_runtime_entry(&call.method.to_string(), &call.args);
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Expr::Path(path) = peel(&call.func)
            && let Some(last) = path.path.segments.last()
        {
            self.note_runtime_entry(&last.ident.to_string(), &call.args);
        }
        visit::visit_expr_call(self, call);
    }
}
