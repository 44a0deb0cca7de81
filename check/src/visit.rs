//! The walk over a fn body: which calls are awaited, which closures run
//! elsewhere, which std lock guards are alive at an `.await`.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Block, Expr, ExprCall, ExprMethodCall, Pat, Stmt, Token};

use crate::config::Config;
use crate::escape;
use crate::finding::{Finding, Scope};
use crate::rules::{self, BUILTIN, Kind, Matcher, OFFLOADERS, OFFLOADING_METHODS, Rule};

/// Checks a fn body as the given lane runs it.
pub fn scan(body: &Block, scope: Scope, config: &Config) -> Vec<Finding> {
    let mut walker = Walker {
        scope,
        config,
        findings: Vec::new(),
        async_depth: 0,
        commands: HashSet::new(),
    };
    walker.visit_block(body);
    walker.findings
}

struct Walker<'a> {
    scope: Scope,
    config: &'a Config,
    findings: Vec<Finding>,
    /// How many async blocks or closures enclose the current node: their
    /// `.await`s belong to them, not to the lane's body.
    async_depth: usize,
    /// Local names bound to a `std::process::Command` or its child.
    commands: HashSet<String>,
}

/// The path of a call as written, `None` for a qualified path (`<T as Tr>::f`).
fn written_path(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Some(
            p.path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// The spans of the first and last segment of a path expression, so that an
/// error underlines all of `std::thread::sleep`.
fn path_ends(expr: &Expr) -> (Span, Span) {
    match expr {
        Expr::Path(p) => {
            let first = p
                .path
                .segments
                .first()
                .map_or_else(|| expr.span(), |s| s.ident.span());
            let last = p.path.segments.last().map_or(first, |s| s.ident.span());
            (first, last)
        }
        _ => (expr.span(), expr.span()),
    }
}

/// Removes parentheses and invisible groups around an expression.
fn peel(mut expr: &Expr) -> &Expr {
    loop {
        match expr {
            Expr::Paren(e) => expr = &e.expr,
            Expr::Group(e) => expr = &e.expr,
            _ => return expr,
        }
    }
}

/// A closure whose body runs later, on another thread, when handed to an
/// offloading API. An async closure still runs on a tokio worker.
fn is_sync_closure(expr: &Expr) -> bool {
    matches!(peel(expr), Expr::Closure(c) if c.asyncness.is_none())
}

/// `pattern` with its `"*"` segments replaced by what was written there.
fn canonical(pattern: &[&str], written: &[String]) -> String {
    let offset = pattern.len() - written.len();
    pattern
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if *p == "*" {
                written[i - offset].as_str()
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("::")
}

impl Walker<'_> {
    fn checks_blocking_calls(&self) -> bool {
        !matches!(self.scope, Scope::Blocking | Scope::BackgroundSync)
    }

    fn applies(&self, kind: Kind) -> bool {
        match self.scope {
            Scope::IoBound | Scope::Async | Scope::BackgroundAsync => true,
            Scope::CpuBound => kind == Kind::Blocking,
            Scope::Blocking | Scope::BackgroundSync => false,
        }
    }

    fn report(&mut self, rule: &str, call: &str, fix: &str, start: Span, end: Span) {
        let message = match self.scope {
            Scope::CpuBound => format!(
                "{call} blocks inside #[cpu_bound], idling one of the few CPU-lane threads; \
                 sleeping and blocking I/O belong in a #[blocking] fn"
            ),
            _ => format!(
                "{call} blocks the tokio worker inside {}; {fix}",
                self.scope.attribute()
            ),
        };
        self.findings.push(Finding::new(rule, message, start, end));
    }

    fn report_rule(
        &mut self,
        rule: &Rule,
        name: &str,
        canonical_call: &str,
        start: Span,
        end: Span,
    ) {
        if self.config.allows(rule.id, canonical_call) {
            return;
        }
        let call = rule
            .call
            .replace("{name}", name)
            .replace("{path}", canonical_call);
        let fix = rule.fix.replace("{name}", name);
        self.report(rule.id, &call, &fix, start, end);
    }

    /// A path call written `path(..)`, not awaited.
    fn check_call(&mut self, call: &ExprCall, path: &[String]) {
        if !self.checks_blocking_calls() {
            return;
        }
        let name = path.last().cloned().unwrap_or_default();
        let (start, end) = path_ends(&call.func);
        for rule in BUILTIN.iter().filter(|r| self.applies(r.kind)) {
            let canonical_call = match rule.matcher {
                Matcher::Path { path: pattern, min } if rules::path_matches(path, pattern, min) => {
                    canonical(pattern, path)
                }
                Matcher::PathPrefix(prefix) if rules::path_starts_with(path, prefix) => {
                    path.join("::")
                }
                _ => continue,
            };
            self.report_rule(rule, &name, &canonical_call, start, end);
            return;
        }
        let written = path.join("::");
        for custom in &self.config.blocking {
            let Some(pattern) = &custom.path else {
                continue;
            };
            let pattern: Vec<&str> = pattern.split("::").collect();
            // `Client::query` (a shortened path) and `crate::db::Client::query`
            // (a longer one) both name `db::Client::query`.
            let longer = path.len() > pattern.len()
                && path[path.len() - pattern.len()..]
                    .iter()
                    .zip(&pattern)
                    .all(|(w, p)| w == p);
            if longer || rules::path_matches(path, &pattern, pattern.len().min(2)) {
                self.report_custom(custom, &pattern.join("::"), &written, start, end);
                return;
            }
        }
    }

    fn report_custom(
        &mut self,
        custom: &crate::config::CustomRule,
        rule: &str,
        written: &str,
        start: Span,
        end: Span,
    ) {
        if self.config.allows(rule, written) {
            return;
        }
        let written = if written.starts_with('.') {
            format!("{written}(..)")
        } else {
            written.to_owned()
        };
        let call = match &custom.reason {
            Some(reason) => format!("`{written}` ({reason})"),
            None => format!("`{written}`"),
        };
        let fix = custom
            .fix
            .as_deref()
            .unwrap_or("move this work into a #[blocking] fn");
        self.report(rule, &call, fix, start, end);
    }

    /// A method call, not awaited.
    fn check_method(&mut self, call: &ExprMethodCall) {
        if !self.checks_blocking_calls() {
            return;
        }
        let name = call.method.to_string();
        let span = call.method.span();
        let end = call.paren_token.span.close();
        let canonical_call = format!(".{name}");
        for rule in BUILTIN.iter().filter(|r| self.applies(r.kind)) {
            let hit = match rule.matcher {
                Matcher::Method { name: wanted, args } => {
                    wanted == name && args.is_none_or(|n| n == call.args.len())
                }
                Matcher::CommandMethod(wanted) => wanted == name && self.is_command(&call.receiver),
                _ => false,
            };
            if hit {
                self.report_rule(rule, &name, &canonical_call, span, end);
                return;
            }
        }
        for custom in &self.config.blocking {
            if custom.method.as_deref() == Some(name.as_str()) {
                self.report_custom(custom, &canonical_call, &canonical_call, span, end);
                return;
            }
        }
    }

    /// The receiver chain starts at `std::process::Command::new(..)` or at a
    /// local bound to one.
    fn is_command(&self, receiver: &Expr) -> bool {
        let mut expr = peel(receiver);
        loop {
            match expr {
                Expr::MethodCall(m) => expr = peel(&m.receiver),
                Expr::Try(t) => expr = peel(&t.expr),
                Expr::Reference(r) => expr = peel(&r.expr),
                Expr::Call(c) => {
                    return written_path(&c.func).is_some_and(|p| {
                        rules::path_matches(&p, &["std", "process", "Command", "new"], 2)
                    });
                }
                Expr::Path(_) => {
                    return written_path(expr)
                        .is_some_and(|p| p.len() == 1 && self.commands.contains(&p[0]));
                }
                _ => return false,
            }
        }
    }

    /// A path call: judged unless `awaited` (the direct operand of `.await`),
    /// then its parts, except the closures an offloading API runs elsewhere.
    fn visit_call(&mut self, call: &ExprCall, awaited: bool) {
        let path = written_path(&call.func);
        if let (Some(path), false) = (&path, awaited) {
            self.check_call(call, path);
        }
        let offloaded = path.is_some_and(|p| {
            OFFLOADERS
                .iter()
                .any(|(pattern, min)| rules::path_matches(&p, pattern, *min))
        });
        self.visit_expr(&call.func);
        for arg in &call.args {
            if !(offloaded && is_sync_closure(arg)) {
                self.visit_expr(arg);
            }
        }
    }

    /// A method call, as [`Walker::visit_call`].
    fn visit_method(&mut self, call: &ExprMethodCall, awaited: bool) {
        if !awaited {
            self.check_method(call);
        }
        let offloaded = OFFLOADING_METHODS.contains(&call.method.to_string().as_str());
        self.visit_expr(&call.receiver);
        for arg in &call.args {
            if !(offloaded && is_sync_closure(arg)) {
                self.visit_expr(arg);
            }
        }
    }

    /// An expression whose value is awaited (by `.await` or by `join!`): a
    /// call or method call there is not itself blocking.
    fn visit_awaited(&mut self, expr: &Expr) {
        match peel(expr) {
            Expr::Call(call) => self.visit_call(call, true),
            Expr::MethodCall(call) => self.visit_method(call, true),
            other => self.visit_expr(other),
        }
    }

    /// Checks `stmts` for std lock guards that are still alive at a later
    /// `.await` of the same block.
    fn check_guards(&mut self, stmts: &[Stmt]) {
        for (i, stmt) in stmts.iter().enumerate() {
            let Some((guard, method)) = guard_binding(stmt) else {
                continue;
            };
            for later in &stmts[i + 1..] {
                if is_drop_of(later, &guard) {
                    break;
                }
                if let Some((dot, await_kw)) = first_await(later) {
                    let message = format!(
                        "std lock guard `{guard}` (from `.{method}()`) is still held at this `.await`: \
                         the lock stays taken while the task is suspended, stalling every thread \
                         that needs it; drop the guard before awaiting (`drop({guard})` or end its \
                         block), or use `tokio::sync::Mutex`"
                    );
                    self.findings.push(Finding::new(
                        "std-guard-across-await",
                        message,
                        dot,
                        await_kw,
                    ));
                    break;
                }
            }
        }
    }

    fn remember_commands(&mut self, stmt: &Stmt) {
        if let Stmt::Local(local) = stmt
            && let (Some(name), Some(init)) = (binding_name(&local.pat), &local.init)
            && self.is_command(&init.expr)
        {
            self.commands.insert(name);
        }
    }
}

/// The name bound by a simple `let` pattern (`g`, `mut g`, `g: T`).
fn binding_name(pat: &Pat) -> Option<String> {
    match pat {
        Pat::Ident(p) => Some(p.ident.to_string()),
        Pat::Type(p) => binding_name(&p.pat),
        _ => None,
    }
}

/// `let g = m.lock().unwrap();` and its shapes (`.read()`, `.write()`,
/// `.try_lock()`, `.expect(..)`, `.unwrap_or_else(..)`, parking_lot's bare
/// `.lock()`): the guard's name and the locking method.
fn guard_binding(stmt: &Stmt) -> Option<(String, String)> {
    const LOCKS: &[&str] = &["lock", "read", "write", "try_lock", "try_read", "try_write"];
    const UNWRAPS: &[&str] = &["unwrap", "expect", "unwrap_or_else"];
    let Stmt::Local(local) = stmt else {
        return None;
    };
    let name = binding_name(&local.pat)?;
    let mut expr = peel(&local.init.as_ref()?.expr);
    loop {
        match expr {
            Expr::Try(t) => expr = peel(&t.expr),
            Expr::MethodCall(m) if UNWRAPS.contains(&m.method.to_string().as_str()) => {
                expr = peel(&m.receiver);
            }
            Expr::MethodCall(m)
                if m.args.is_empty() && LOCKS.contains(&m.method.to_string().as_str()) =>
            {
                return Some((name, m.method.to_string()));
            }
            _ => return None,
        }
    }
}

/// `drop(name);`
fn is_drop_of(stmt: &Stmt, name: &str) -> bool {
    let Stmt::Expr(Expr::Call(call), _) = stmt else {
        return false;
    };
    written_path(&call.func).is_some_and(|p| p.last().is_some_and(|f| f == "drop"))
        && call.args.len() == 1
        && written_path(&call.args[0]).is_some_and(|p| p == [name])
}

/// The body awaits something itself, not only inside a closure, async
/// block or item it holds.
pub fn awaits(body: &Block) -> bool {
    body.stmts.iter().any(|stmt| first_await(stmt).is_some())
}

/// The first `.await` of this statement itself, not of a closure, async
/// block or item inside it: the spans of its `.` and `await`.
fn first_await(stmt: &Stmt) -> Option<(Span, Span)> {
    struct FirstAwait(Option<(Span, Span)>);
    impl<'ast> Visit<'ast> for FirstAwait {
        fn visit_expr_await(&mut self, e: &'ast syn::ExprAwait) {
            visit::visit_expr_await(self, e);
            self.0.get_or_insert((e.dot_token.span, e.await_token.span));
        }
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut finder = FirstAwait(None);
    finder.visit_stmt(stmt);
    finder.0
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_block(&mut self, block: &'ast Block) {
        for stmt in &block.stmts {
            match escape::statement_allow(stmt) {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    let span = error.span();
                    self.findings.push(Finding::new(
                        "allow-without-reason",
                        error.to_string(),
                        span,
                        span,
                    ));
                }
                None => self.visit_stmt(stmt),
            }
            self.remember_commands(stmt);
        }
        if matches!(
            self.scope,
            Scope::IoBound | Scope::Async | Scope::BackgroundAsync
        ) {
            self.check_guards(&block.stmts);
        }
    }

    fn visit_expr_call(&mut self, call: &'ast ExprCall) {
        self.visit_call(call, false);
    }

    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        self.visit_method(call, false);
    }

    fn visit_expr_await(&mut self, e: &'ast syn::ExprAwait) {
        if self.async_depth == 0
            && matches!(
                self.scope,
                Scope::Blocking | Scope::CpuBound | Scope::BackgroundSync
            )
        {
            let lane = self.scope.attribute();
            let runs_on = if self.scope == Scope::CpuBound {
                "a CPU-lane thread"
            } else {
                "a blocking-pool thread"
            };
            let instead = if self.scope == Scope::BackgroundSync {
                "make this job fn `async`"
            } else {
                "make this an #[io_bound] async fn"
            };
            let message = format!(
                "`.await` cannot be used inside {lane}: the body runs on {runs_on}, outside any \
                 async task; call the synchronous API, or {instead}"
            );
            self.findings.push(Finding::new(
                "await-in-sync-lane",
                message,
                e.dot_token.span,
                e.await_token.span,
            ));
        }
        self.visit_awaited(&e.base);
    }

    fn visit_expr_async(&mut self, e: &'ast syn::ExprAsync) {
        self.async_depth += 1;
        visit::visit_expr_async(self, e);
        self.async_depth -= 1;
    }

    fn visit_expr_closure(&mut self, e: &'ast syn::ExprClosure) {
        let is_async = e.asyncness.is_some();
        self.async_depth += usize::from(is_async);
        visit::visit_expr_closure(self, e);
        self.async_depth -= usize::from(is_async);
    }

    /// Items nested in a body (helper fns, impls) do not run where the body runs.
    fn visit_item(&mut self, _: &'ast syn::Item) {}

    /// Macro arguments are checked when they parse as expressions
    /// (`println!`, `vec!`, `format!`); the futures given to `join!` and
    /// `try_join!` are awaited by the macro.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let Ok(args) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) else {
            return;
        };
        let name = mac.path.segments.last().map(|s| s.ident.to_string());
        let awaits_args = matches!(name.as_deref(), Some("join" | "try_join"));
        for arg in &args {
            if awaits_args {
                self.visit_awaited(arg);
            } else {
                self.visit_expr(arg);
            }
        }
    }
}
