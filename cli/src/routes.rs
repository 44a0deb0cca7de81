//! Who runs the code of a file: the fns and closures that axum and
//! actix-web route or wrap as middleware, and the futures handed to
//! `tokio::spawn` and its kin.

use std::collections::HashMap;

use proc_macro2::{LineColumn, TokenTree};
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, ExprCall, ExprMethodCall, Lit};

use crate::Context;

/// What code is to whoever runs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Role {
    pub(crate) context: Context,
    /// As the report prints it (`handler for GET /x`, `middleware`); none
    /// when the context says it all.
    pub(crate) label: Option<String>,
}

impl Role {
    fn handler(label: String) -> Role {
        Role {
            context: Context::Handler,
            label: Some(label),
        }
    }

    fn middleware() -> Role {
        Role {
            context: Context::Middleware,
            label: Some("middleware".to_owned()),
        }
    }

    fn background() -> Role {
        Role {
            context: Context::Background,
            label: None,
        }
    }

    /// Main before its server starts.
    pub(crate) fn start_up() -> Role {
        Role {
            context: Context::StartUp,
            label: None,
        }
    }
}

/// A fn named where it is routed, wrapped or spawned.
#[derive(Debug)]
pub(crate) struct NamedRole {
    /// The fn's path as written there (`handlers::users::get`), resolved
    /// through the crate model to the fn it names.
    pub(crate) fn_path: String,
    /// The line it is written on, where the model resolves it.
    pub(crate) line: usize,
    /// The fn it names, as [`lanes_check::Model::item_named`] gives it;
    /// `None` until resolved, or when the model cannot tell.
    pub(crate) target: Option<String>,
    pub(crate) naming: Naming,
}

#[derive(Debug)]
pub(crate) enum Naming {
    /// `.route("/x", get(h))`, `from_fn(h)`, `tokio::spawn(h(..))`,
    /// utoipa's `routes!(h)`.
    Role(Role),
    /// actix-web's `.service(h)`: `h` serves the routes of its own
    /// attributes (`#[get("/x")]`), under the prefix of the scopes around.
    Mounted { prefix: String },
}

/// A route a fn's attribute declares: `#[get("/x")]`,
/// `#[utoipa::path(get, path = "/x")]`.
#[derive(Debug)]
pub(crate) struct Route {
    /// Upper case; none for a route that takes every method.
    method: Option<String>,
    path: String,
}

impl Route {
    /// The role of a fn serving this route under `prefix`.
    pub(crate) fn role(&self, prefix: &str) -> Role {
        let path = join_paths(prefix, &self.path);
        Role::handler(handler_label(self.method.as_deref(), &path))
    }
}

/// The roles one file gives.
#[derive(Debug, Default)]
pub(crate) struct FileRoles {
    /// To fns, by the path written for them.
    pub(crate) named: Vec<NamedRole>,
    /// To closures and async blocks written where they are handed over, by
    /// where they start ([`in_place_start`]).
    pub(crate) in_place: HashMap<LineColumn, Vec<Role>>,
}

/// The position that names a closure or an async block written in place,
/// the same in every visit of the file; `None` for other expressions.
pub(crate) fn in_place_start(expr: &Expr) -> Option<LineColumn> {
    match expr {
        Expr::Closure(closure) => Some(closure.or1_token.span.start()),
        Expr::Async(block) => Some(block.async_token.span.start()),
        _ => None,
    }
}

/// The roles the routers, middleware and spawns of `file` give.
pub(crate) fn of_file(file: &syn::File) -> FileRoles {
    let mut visitor = Routes {
        roles: FileRoles::default(),
        prefix: String::new(),
    };
    visitor.visit_file(file);
    visitor.roles
}

/// HTTP methods, as axum's and actix-web's routing functions (`get(h)`,
/// `web::get()`) and attributes (`#[get("/x")]`) name them.
const METHODS: &[&str] = &[
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect",
];

/// axum's method routers: one per method, and `any(h)` for all of them.
fn is_axum_method(name: &str) -> bool {
    METHODS.contains(&name) || name == "any"
}

fn handler_label(method: Option<&str>, path: &str) -> String {
    match method {
        Some(method) => format!("handler for {} {path}", method.to_uppercase()),
        None => format!("handler for {path}"),
    }
}

/// A scope's prefix joined to a route's path, with one `/` between.
fn join_paths(prefix: &str, path: &str) -> String {
    match (prefix.strip_suffix('/'), path.starts_with('/')) {
        (Some(trimmed), true) => format!("{trimmed}{path}"),
        (None, false) if !prefix.is_empty() && !path.is_empty() => format!("{prefix}/{path}"),
        _ => format!("{prefix}{path}"),
    }
}

/// Removes parentheses and invisible groups around an expression.
pub(crate) fn peel(mut expr: &Expr) -> &Expr {
    loop {
        match expr {
            Expr::Paren(e) => expr = &e.expr,
            Expr::Group(e) => expr = &e.expr,
            _ => return expr,
        }
    }
}

/// The names of a path's segments, without their generic arguments.
pub(crate) fn segments(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}

/// `handlers::users::get` for that path expression.
fn written_path(expr: &Expr) -> Option<String> {
    match peel(expr) {
        Expr::Path(p) if p.qself.is_none() => Some(segments(&p.path).join("::")),
        _ => None,
    }
}

fn line_of(expr: &Expr) -> usize {
    syn::spanned::Spanned::span(expr).start().line
}

fn last_segment(expr: &Expr) -> Option<String> {
    match peel(expr) {
        Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    match peel(expr) {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        _ => None,
    }
}

/// The path given to `web::scope(path)` or `web::resource(path)` when
/// `root`, the first receiver of a method chain, is that call.
fn root_path(root: &Expr, function: &str) -> Option<String> {
    match peel(root) {
        Expr::Call(call)
            if last_segment(&call.func).as_deref() == Some(function) && call.args.len() == 1 =>
        {
            string_literal(&call.args[0])
        }
        _ => None,
    }
}

/// The method an actix-web route answers: `web::get()`, `web::method(Method::GET)`,
/// `web::route().method(Method::GET)`, with any `.guard(..)`; `None` for any.
fn actix_route_method(expr: &Expr) -> Option<String> {
    match peel(expr) {
        Expr::Call(call) => {
            let function = last_segment(&call.func)?;
            if METHODS.contains(&function.as_str()) && call.args.is_empty() {
                Some(function)
            } else if function == "method" && call.args.len() == 1 {
                last_segment(&call.args[0])
            } else {
                None
            }
        }
        Expr::MethodCall(call) if call.method == "method" && call.args.len() == 1 => {
            last_segment(&call.args[0])
        }
        Expr::MethodCall(call) => actix_route_method(&call.receiver),
        _ => None,
    }
}

/// `tokio::spawn`, `tokio::task::spawn_local`, `actix_rt::spawn`, not the
/// thread spawns, whose closures the rule engine knows to run elsewhere.
fn is_future_spawn(func: &Expr) -> bool {
    let Expr::Path(path) = peel(func) else {
        return false;
    };
    let segments = segments(&path.path);
    segments
        .last()
        .is_some_and(|last| last == "spawn" || last == "spawn_local")
        && !segments.iter().any(|s| s == "thread" || s == "rayon")
}

struct Routes {
    roles: FileRoles,
    /// The prefix of the actix-web scopes around the visited code.
    prefix: String,
}

impl Routes {
    /// `code` runs as `role`: a fn named by its path, or a closure or async
    /// block written in place.
    fn hand_over(&mut self, code: &Expr, role: Role) {
        let code = peel(code);
        if let Some(fn_path) = written_path(code) {
            self.name(fn_path, line_of(code), Naming::Role(role));
        } else if let Some(at) = in_place_start(code) {
            let roles = self.roles.in_place.entry(at).or_default();
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
    }

    fn name(&mut self, fn_path: String, line: usize, naming: Naming) {
        self.roles.named.push(NamedRole {
            fn_path,
            line,
            target: None,
            naming,
        });
    }

    /// A future handed to a spawn: an async block, or the call of an async
    /// fn (`tokio::spawn(worker(rx))` runs `worker` in the background).
    fn spawned(&mut self, future: &Expr) {
        match peel(future) {
            Expr::Call(call) => self.hand_over(&call.func, Role::background()),
            future @ Expr::Async(_) => self.hand_over(future, Role::background()),
            _ => {}
        }
    }

    /// What serves `path`: axum's `get(h)`, `get(h).post(h2)`,
    /// `on(MethodFilter::PUT, h)`, actix-web's `web::get().to(h)`.
    fn method_router(&mut self, path: &str, expr: &Expr) {
        match peel(expr) {
            Expr::Call(call) => {
                let Some(func) = last_segment(&call.func) else {
                    return;
                };
                if is_axum_method(&func) && call.args.len() == 1 {
                    let label = handler_label(Some(&func), path);
                    self.hand_over(&call.args[0], Role::handler(label));
                } else if func == "on" && call.args.len() == 2 {
                    self.hand_over(&call.args[1], Role::handler(handler_label(None, path)));
                }
            }
            Expr::MethodCall(call) if call.method == "to" && call.args.len() == 1 => {
                let method = actix_route_method(&call.receiver);
                let label = handler_label(method.as_deref(), path);
                self.hand_over(&call.args[0], Role::handler(label));
            }
            Expr::MethodCall(call) => {
                let method = call.method.to_string();
                if is_axum_method(&method) && call.args.len() == 1 {
                    let label = handler_label(Some(&method), path);
                    self.hand_over(&call.args[0], Role::handler(label));
                }
                self.method_router(path, &call.receiver);
            }
            _ => {}
        }
    }

    /// The routes one method call of a router declares, `prefix` being the
    /// scopes' prefix there and `resource` the path of the
    /// `web::resource(path)` its chain starts with.
    fn method_call(&mut self, call: &ExprMethodCall, prefix: &str, resource: Option<&str>) {
        match (call.method.to_string().as_str(), call.args.len(), resource) {
            // axum's `.route(path, get(h))`, actix-web's `.route(path, web::get().to(h))`.
            ("route", 2, _) => {
                let path = string_literal(&call.args[0])
                    .map_or_else(|| "<dynamic path>".to_owned(), |p| join_paths(prefix, &p));
                self.method_router(&path, &call.args[1]);
            }
            // actix-web's `web::resource(path).route(web::get().to(h))`.
            ("route", 1, Some(path)) => self.method_router(path, &call.args[0]),
            // actix-web's `web::resource(path).to(h)`.
            ("to", 1, Some(path)) => {
                let label = handler_label(None, path);
                self.hand_over(&call.args[0], Role::handler(label));
            }
            ("service", 1, _) => {
                if let Some(fn_path) = written_path(&call.args[0]) {
                    let prefix = prefix.to_owned();
                    self.name(fn_path, line_of(&call.args[0]), Naming::Mounted { prefix });
                }
            }
            ("wrap_fn", 1, _) => self.hand_over(&call.args[0], Role::middleware()),
            ("spawn" | "spawn_local", 1, _) => self.spawned(&call.args[0]),
            _ => {}
        }
    }
}

impl<'ast> Visit<'ast> for Routes {
    /// A whole method chain at once, so that its first receiver is read
    /// once however long the chain.
    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        let mut links = vec![call];
        while let Expr::MethodCall(inner) = peel(&links[links.len() - 1].receiver) {
            links.push(inner);
        }
        let root = &links[links.len() - 1].receiver;
        let here = match root_path(root, "scope") {
            Some(scope) => join_paths(&self.prefix, &scope),
            None => self.prefix.clone(),
        };
        let resource = root_path(root, "resource").map(|path| join_paths(&here, &path));
        for link in links.iter().rev() {
            self.method_call(link, &here, resource.as_deref());
        }
        self.visit_expr(root);
        // Routes inside the arguments (`.service(web::scope("/v1")..)`) sit
        // under this chain's scope.
        let outer = std::mem::replace(&mut self.prefix, here);
        for link in links.iter().rev() {
            for arg in &link.args {
                self.visit_expr(arg);
            }
        }
        self.prefix = outer;
    }

    fn visit_expr_call(&mut self, call: &'ast ExprCall) {
        let func = last_segment(&call.func);
        if matches!(func.as_deref(), Some("from_fn" | "from_fn_with_state"))
            && let Some(last) = call.args.last()
        {
            self.hand_over(last, Role::middleware());
        } else if is_future_spawn(&call.func) && call.args.len() == 1 {
            self.spawned(&call.args[0]);
        }
        visit::visit_expr_call(self, call);
    }

    /// utoipa-axum's `routes!(a, b)`: each fn is a handler, of the routes
    /// its `#[utoipa::path]` declares.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let is_routes = mac
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "routes");
        if !is_routes {
            return;
        }
        let parser = syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated;
        let Ok(handlers) = mac.parse_body_with(parser) else {
            return;
        };
        for handler in handlers {
            let fn_path = segments(&handler).join("::");
            let role = Role {
                context: Context::Handler,
                label: None,
            };
            let line = handler
                .segments
                .first()
                .map_or(0, |s| s.ident.span().start().line);
            self.name(fn_path, line, Naming::Role(role));
        }
    }
}

/// The routes a fn's own attributes declare: actix-web's `#[get("/x")]`
/// (and `#[post]`, `#[route("/x", method = "GET", method = "POST")]`, ..),
/// utoipa's `#[utoipa::path(get, path = "/x")]`.
pub(crate) fn declared(attrs: &[Attribute]) -> Vec<Route> {
    attrs.iter().flat_map(attribute_routes).collect()
}

fn attribute_routes(attr: &Attribute) -> Vec<Route> {
    let segments = segments(attr.path());
    let Ok(list) = attr.meta.require_list() else {
        return Vec::new();
    };
    let args = split_arguments(list.tokens.clone());
    let last = segments.last().map_or("", String::as_str);
    if matches!(segments.as_slice(), [.., crate_name, path] if crate_name == "utoipa" && path == "path")
    {
        return utoipa_routes(&args);
    }
    // A string first: the attribute is a route's, not one that happens to
    // share a method's name.
    let Some(path) = args.first().and_then(|first| single_string(first)) else {
        return Vec::new();
    };
    if METHODS.contains(&last) {
        vec![Route {
            method: Some(last.to_uppercase()),
            path,
        }]
    } else if last == "route" {
        let methods: Vec<String> = args[1..]
            .iter()
            .filter_map(|arg| named_string(arg, "method"))
            .collect();
        if methods.is_empty() {
            vec![Route { method: None, path }]
        } else {
            routes_for(methods, &path)
        }
    } else {
        Vec::new()
    }
}

/// `get, path = "/x", ..` or `method(get, head), path = "/x", ..`.
fn utoipa_routes(args: &[Vec<TokenTree>]) -> Vec<Route> {
    let Some(path) = args.iter().find_map(|arg| named_string(arg, "path")) else {
        return Vec::new();
    };
    let mut methods = Vec::new();
    for arg in args {
        match arg.as_slice() {
            [TokenTree::Ident(method)] => methods.push(method.to_string()),
            [TokenTree::Ident(key), TokenTree::Group(list)] if key == "method" => {
                methods.extend(list.stream().into_iter().filter_map(|t| match t {
                    TokenTree::Ident(method) => Some(method.to_string()),
                    _ => None,
                }))
            }
            _ => {}
        }
    }
    methods.retain(|m| METHODS.contains(&m.as_str()));
    routes_for(methods, &path)
}

/// One route of `path` for each method.
fn routes_for(methods: Vec<String>, path: &str) -> Vec<Route> {
    methods
        .into_iter()
        .map(|method| Route {
            method: Some(method.to_uppercase()),
            path: path.to_owned(),
        })
        .collect()
}

/// An attribute's arguments, split at the commas between them. Lenient on
/// purpose: the arguments of `#[utoipa::path]` hold types and nested lists
/// that need not be understood to read the method and the path.
fn split_arguments(tokens: proc_macro2::TokenStream) -> Vec<Vec<TokenTree>> {
    let mut args = vec![Vec::new()];
    for token in tokens {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => args.push(Vec::new()),
            _ => args.last_mut().expect("never empty").push(token),
        }
    }
    args.retain(|arg| !arg.is_empty());
    args
}

/// The text of an argument that is one string literal.
fn single_string(arg: &[TokenTree]) -> Option<String> {
    match arg {
        [TokenTree::Literal(literal)] => match Lit::new(literal.clone()) {
            Lit::Str(s) => Some(s.value()),
            _ => None,
        },
        _ => None,
    }
}

/// The text of `key = "text"`.
fn named_string(arg: &[TokenTree], key: &str) -> Option<String> {
    match arg {
        [TokenTree::Ident(name), TokenTree::Punct(eq), value]
            if name == key && eq.as_char() == '=' =>
        {
            single_string(std::slice::from_ref(value))
        }
        _ => None,
    }
}
