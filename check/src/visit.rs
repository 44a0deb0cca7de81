//! The walk over a fn body: what each call names, which calls are awaited,
//! which closures run elsewhere, which std handles block, which lock guards
//! are alive at an `.await`, and which of the crate's own helpers block.

use std::collections::HashMap;

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Block, Expr, ExprCall, ExprMethodCall, FnArg, Pat, Signature, Stmt, Token};

use crate::config::{Config, CustomRule};
use crate::escape;
use crate::finding::{Finding, Scope};
use crate::flow::{self, Flows};
use crate::model::summary::{Call, Leaf, Raw};
use crate::model::{Chain, Held, ItemPath, Model, Place};
use crate::resolve::{self, KNOWN_CRATES, Resolved};
use crate::rules::{
    self, ASYNC_PREFIXES, BUILTIN, FUTURE_ADAPTERS, FUTURE_CONSUMERS, Kind, Matcher, Origin, Rule,
};

/// Checks a fn body as the given lane runs it, from its tokens alone.
pub fn scan(body: &Block, scope: Scope, config: &Config) -> Vec<Finding> {
    check(body, None, scope, config, None)
}

/// Checks a fn body as the given lane runs it. With the crate model and the
/// body's place in it, names resolve through the file's `use` lines and
/// calls into the crate's own sync helpers are followed; `sig` gives the
/// types of the arguments.
pub fn check(
    body: &Block,
    sig: Option<&Signature>,
    scope: Scope,
    config: &Config,
    model: Option<(&Model, &Place)>,
) -> Vec<Finding> {
    let mut walker = Walker::new(body, scope, config, model, false);
    if let Some(sig) = sig {
        walker.remember_arguments(sig);
    }
    walker.visit_block(body);
    walker.findings.sort_by_key(|f| {
        let at = f.start.start();
        (at.line, at.column)
    });
    walker.findings
}

/// What a sync fn of the crate calls and what in it blocks, for the model.
pub(crate) fn summarize(
    body: &Block,
    sig: &Signature,
    model: &Model,
    place: &Place,
    config: &Config,
) -> Raw {
    let mut walker = Walker::new(body, Scope::Async, config, Some((model, place)), true);
    walker.remember_arguments(sig);
    walker.visit_block(body);
    walker.raw
}

struct Walker<'a> {
    scope: Scope,
    config: &'a Config,
    model: Option<(&'a Model, &'a Place)>,
    /// Walking a sync helper for the model: what blocks is recorded as
    /// leaves and calls, not reported, and async blocks are left out (they
    /// do not run when the helper is called).
    summarizing: bool,
    findings: Vec<Finding>,
    raw: Raw,
    /// How many async blocks or closures enclose the current node: their
    /// `.await`s belong to them, not to the lane's body.
    async_depth: usize,
    /// Local names bound to a std handle.
    origins: HashMap<String, Origin>,
    /// Arguments and locals whose type says what they hold.
    held: HashMap<String, Held>,
    flows: Flows,
    /// `use` items written inside the body, innermost last.
    local_uses: Vec<(String, Vec<String>)>,
}

/// A std or parking_lot lock guard bound in a block.
struct Guard {
    name: String,
    method: String,
    line: usize,
    parking_lot: bool,
}

/// The path of a call as written, `None` for a qualified path (`<T as Tr>::f`).
fn written_path(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Some(resolve::written(&p.path)),
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

/// The call a path rule names, when `resolved` is what it matches: an
/// exact path for a resolved one, a suffix for one taken as written.
fn path_rule_match(matcher: &Matcher, resolved: &Resolved) -> Option<String> {
    match (matcher, resolved) {
        (Matcher::Path { path, .. }, Resolved::External(p)) => {
            rules::path_equals(p, path).then(|| canonical(path, p))
        }
        (Matcher::Path { path, min }, Resolved::AsWritten(p)) => {
            rules::path_matches(p, path, *min).then(|| canonical(path, p))
        }
        (Matcher::PathPrefix(prefix), Resolved::External(p) | Resolved::AsWritten(p)) => {
            rules::path_starts_with(p, prefix).then(|| p.join("::"))
        }
        _ => None,
    }
}

/// The path is std's (or core's), written out or resolved.
fn names_std(resolved: &Resolved) -> bool {
    match resolved {
        Resolved::External(p) | Resolved::AsWritten(p) => {
            p.first().is_some_and(|s| s == "std" || s == "core")
        }
        Resolved::Local(_) => false,
    }
}

/// The std handle a constructor call makes: `std::process::Command::new`
/// makes a `Command`.
fn constructed(resolved: &Resolved) -> Option<Origin> {
    const CONSTRUCTORS: &[(&[&str], Origin)] = &[
        (&["std", "process", "Command", "new"], Origin::Command),
        (&["std", "thread", "spawn"], Origin::Thread),
        (&["std", "thread", "Builder", "new"], Origin::ThreadBuilder),
        (&["std", "net", "TcpListener", "bind"], Origin::Listener),
        (&["std", "net", "TcpStream", "connect"], Origin::Socket),
        (
            &["std", "net", "TcpStream", "connect_timeout"],
            Origin::Socket,
        ),
        (&["std", "fs", "File", "open"], Origin::File),
        (&["std", "fs", "File", "create"], Origin::File),
        (&["std", "fs", "File", "create_new"], Origin::File),
        (&["std", "fs", "File", "options"], Origin::OpenOptions),
        (&["std", "fs", "OpenOptions", "new"], Origin::OpenOptions),
        (&["std", "io", "stdin"], Origin::Stdin),
        (&["tar", "Archive", "new"], Origin::TarArchive),
        (&["tempfile", "tempfile"], Origin::File),
        (&["redis", "Client", "open"], Origin::RedisClient),
    ];
    CONSTRUCTORS.iter().find_map(|(pattern, origin)| {
        let matcher = Matcher::Path {
            path: pattern,
            min: 2,
        };
        path_rule_match(&matcher, resolved).map(|_| *origin)
    })
}

/// The name bound by a simple pattern (`g`, `mut g`, `g: T`), or by
/// `Ok(g)` / `Some(g)` when `through_wrapper`.
fn binding_name(pat: &Pat, through_wrapper: bool) -> Option<String> {
    match pat {
        Pat::Ident(p) => Some(p.ident.to_string()),
        Pat::Type(p) => binding_name(&p.pat, through_wrapper),
        Pat::TupleStruct(p) if through_wrapper && p.elems.len() == 1 => {
            binding_name(&p.elems[0], false)
        }
        _ => None,
    }
}

/// `Ok(g)` rather than `g`: the pattern itself unwraps a `Result`.
fn unwraps_a_result(pat: &Pat) -> bool {
    matches!(pat, Pat::TupleStruct(p) if p.path.is_ident("Ok"))
}

/// `drop(name);`: the name dropped.
fn dropped(stmt: &Stmt) -> Option<String> {
    let Stmt::Expr(Expr::Call(call), _) = stmt else {
        return None;
    };
    let func = written_path(&call.func)?;
    if func.last().is_none_or(|f| f != "drop") || call.args.len() != 1 {
        return None;
    }
    match written_path(&call.args[0])?.as_slice() {
        [name] => Some(name.clone()),
        _ => None,
    }
}

/// The body awaits something itself, not only inside a closure, async
/// block or item it holds.
pub fn awaits(body: &Block) -> bool {
    body.stmts
        .iter()
        .any(|stmt| first_await_in_stmt(stmt).is_some())
}

/// Finds the first `.await` of a node itself, not of a closure, async block
/// or item inside it: the spans of its `.` and `await`.
#[derive(Default)]
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

fn first_await_in_stmt(stmt: &Stmt) -> Option<(Span, Span)> {
    let mut finder = FirstAwait::default();
    finder.visit_stmt(stmt);
    finder.0
}

fn first_await_in_expr(expr: &Expr) -> Option<(Span, Span)> {
    let mut finder = FirstAwait::default();
    finder.visit_expr(expr);
    finder.0
}

impl<'a> Walker<'a> {
    fn new(
        body: &Block,
        scope: Scope,
        config: &'a Config,
        model: Option<(&'a Model, &'a Place)>,
        summarizing: bool,
    ) -> Self {
        Walker {
            scope,
            config,
            model,
            summarizing,
            findings: Vec::new(),
            raw: Raw::default(),
            async_depth: 0,
            origins: HashMap::new(),
            held: HashMap::new(),
            flows: flow::flows(body, &config.offload),
            local_uses: Vec::new(),
        }
    }

    fn checks_blocking_calls(&self) -> bool {
        !matches!(self.scope, Scope::Blocking | Scope::BackgroundSync)
    }

    fn checks_guards(&self) -> bool {
        !self.summarizing && crate::rules::guards_checked_in(self.scope)
    }

    fn applies(&self, kind: Kind) -> bool {
        if self.summarizing {
            return kind != Kind::PathStat;
        }
        kind.applies_in(self.scope)
    }

    /// What `written` names: through `use` items of the body, then the
    /// crate model.
    fn resolve(&self, written: &[String]) -> Resolved {
        let mut segments = written.to_vec();
        let mut substituted = false;
        if let Some(first) = segments.first()
            && let Some((_, target)) = self.local_uses.iter().rev().find(|(n, _)| n == first)
        {
            let mut full = target.clone();
            full.extend(segments.drain(1..));
            segments = full;
            substituted = true;
        }
        if segments.first().is_some_and(String::is_empty) {
            return Resolved::External(segments.split_off(1));
        }
        match self.model {
            Some((model, place)) => model.resolve(place, &segments),
            None if substituted
                && segments
                    .first()
                    .is_some_and(|s| KNOWN_CRATES.contains(&s.as_str())) =>
            {
                Resolved::External(segments)
            }
            None => Resolved::AsWritten(segments),
        }
    }

    fn report(&mut self, rule: &str, kind: Kind, call: &str, fix: &str, start: Span, end: Span) {
        if self.summarizing {
            self.raw.leaves.push(Leaf {
                rule: rule.to_owned(),
                kind,
                call: call.to_owned(),
                line: start.start().line,
            });
            return;
        }
        let message = match self.scope {
            Scope::CpuBound if rule == "block-on" => format!(
                "{call} inside #[cpu_bound] blocks a CPU-lane thread on a future; to share work \
                 with another #[cpu_bound] fn, move it into a plain fn that both call"
            ),
            Scope::CpuBound => format!(
                "{call} blocks inside #[cpu_bound], idling one of the few CPU-lane threads; \
                 sleeping and blocking I/O belong in a #[blocking] fn"
            ),
            _ => format!(
                "{call} blocks the tokio worker inside {}; {fix}",
                self.scope.attribute()
            ),
        };
        self.findings
            .push(Finding::new(rule, message, start, end).with_severity(kind.severity()));
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
        self.report(rule.id, rule.kind, &call, &fix, start, end);
    }

    /// A call of the crate's fn `path`: `true` when it is one (then nothing
    /// else is said about the call). A sync helper that reaches a blocking
    /// call is reported here, with the way down to it.
    fn local_call(&mut self, path: &ItemPath, shown: &str, start: Span, end: Span) -> bool {
        let Some((model, _)) = self.model else {
            return false;
        };
        let Some(info) = model.fn_info(path) else {
            return false;
        };
        if info.returns_future {
            return true;
        }
        if self.summarizing {
            self.raw.calls.push(Call {
                target: path.clone(),
                line: start.start().line,
            });
            return true;
        }
        for kind in [Kind::Blocking, Kind::CpuHeavy] {
            if !self.applies(kind) {
                continue;
            }
            if let Some(chain) = model.summary(path, kind) {
                if !self.config.allows(&chain.rule, &path.display()) {
                    self.report_chain(shown, path, chain, kind, start, end);
                }
                break;
            }
        }
        true
    }

    fn report_chain(
        &mut self,
        shown: &str,
        path: &ItemPath,
        chain: &Chain,
        kind: Kind,
        start: Span,
        end: Span,
    ) {
        let name = path.name();
        let (lane, helper) = if kind == Kind::CpuHeavy {
            ("#[cpu_bound]", "lanes::run_cpu")
        } else {
            ("#[blocking]", "lanes::run_blocking")
        };
        let message = match self.scope {
            Scope::CpuBound => format!(
                "{shown} blocks inside #[cpu_bound], idling one of the few CPU-lane threads: {}; \
                 sleeping and blocking I/O belong in a #[blocking] fn",
                chain.describe()
            ),
            _ => format!(
                "{shown} blocks the tokio worker inside {}: {}; make `{name}` a {lane} fn and \
                 `.await` it, or call it inside `{helper}(move || ..).await`",
                self.scope.attribute(),
                chain.describe()
            ),
        };
        self.findings
            .push(Finding::new(chain.rule.clone(), message, start, end));
    }

    /// A path call written `path(..)`, not awaited.
    fn check_call(&mut self, call: &ExprCall, written: &[String], resolved: &Resolved) {
        if !self.checks_blocking_calls() {
            return;
        }
        let (start, end) = path_ends(&call.func);
        if let Resolved::Local(path) = resolved {
            // A project rule names the crate's own fn: it blocks, whatever
            // its body shows.
            if !self.check_custom_path(&path.segments, start, end) {
                let shown = format!("`{}(..)`", written.join("::"));
                self.local_call(path, &shown, start, end);
            }
            return;
        }
        let segments = resolved.segments();
        if resolved.is_async_runtime()
            || ASYNC_PREFIXES
                .iter()
                .any(|prefix| rules::path_starts_with(segments, prefix))
        {
            return;
        }
        let name = segments.last().cloned().unwrap_or_default();
        for rule in BUILTIN.iter().filter(|r| self.applies(r.kind)) {
            if rule.id == "archive" && reads_from_memory(call) {
                continue;
            }
            if let Some(canonical_call) = path_rule_match(&rule.matcher, resolved)
                && !builds_options(segments)
            {
                self.report_rule(rule, &name, &canonical_call, start, end);
                return;
            }
        }
        self.check_custom_path(segments, start, end);
    }

    /// `lanes.toml`'s `path` rules: `Client::query` (a shortened path) and
    /// `crate::db::Client::query` (a longer one) both name
    /// `db::Client::query`. `true` when one matches.
    fn check_custom_path(&mut self, path: &[String], start: Span, end: Span) -> bool {
        let written = path.join("::");
        let config = self.config;
        for custom in &config.blocking {
            let Some(pattern) = &custom.path else {
                continue;
            };
            let pattern: Vec<&str> = pattern.split("::").collect();
            if rules::path_ends_with(path, &pattern)
                || rules::path_matches(path, &pattern, pattern.len().min(2))
            {
                self.report_custom(custom, &pattern.join("::"), &written, start, end);
                return true;
            }
        }
        false
    }

    fn report_custom(
        &mut self,
        custom: &CustomRule,
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
        self.report(rule, Kind::Blocking, &call, fix, start, end);
    }

    /// The crate's method that `call` calls, when it is known: `self.m(..)`
    /// and `Self`'s inside an impl.
    fn own_method(&self, call: &ExprMethodCall) -> Option<ItemPath> {
        let (model, place) = self.model?;
        let Expr::Path(receiver) = peel(&call.receiver) else {
            return None;
        };
        if !receiver.path.is_ident("self") {
            return None;
        }
        let owner = place.self_type.as_ref()?;
        let mut path = owner.clone();
        path.segments.push(call.method.to_string());
        model.fn_info(&path).map(|_| path)
    }

    /// A method call, not awaited.
    fn check_method(&mut self, call: &ExprMethodCall) {
        if !self.checks_blocking_calls() {
            return;
        }
        let name = call.method.to_string();
        let span = call.method.span();
        let end = call.paren_token.span.close();
        let shown = match receiver_text(&call.receiver) {
            Some(receiver) => format!("`{receiver}.{name}(..)`"),
            None => format!("`.{name}(..)`"),
        };
        if let Some(path) = self.own_method(call)
            && self.local_call(&path, &shown, span, end)
        {
            return;
        }
        let canonical_call = format!(".{name}");
        let origin = self.origin_of(&call.receiver);
        for rule in BUILTIN.iter().filter(|r| self.applies(r.kind)) {
            let hit = match rule.matcher {
                // A `Metadata` or `FileType` fetched already answers
                // `.is_dir()` from memory.
                _ if rule.kind == Kind::PathStat && is_fetched_metadata(&call.receiver) => false,
                Matcher::Method { name: wanted, args } => {
                    wanted == name && args.is_none_or(|n| n == call.args.len())
                }
                Matcher::OriginMethod { origins, names } => {
                    names.contains(&name.as_str()) && origin.is_some_and(|o| origins.contains(&o))
                }
                Matcher::DieselQuery(names) => {
                    names.contains(&name.as_str())
                        && call.args.len() == 1
                        && is_connection_argument(&call.args[0])
                        && self.uses_sync_diesel()
                }
                _ => false,
            };
            if hit {
                self.report_rule(rule, &name, &canonical_call, span, end);
                return;
            }
        }
        let config = self.config;
        for custom in &config.blocking {
            if custom.method.as_deref() == Some(name.as_str()) {
                self.report_custom(custom, &canonical_call, &canonical_call, span, end);
                return;
            }
        }
        if let Some((model, _)) = self.model
            && let Some(path) = model.method_by_name(&name, call.args.len())
        {
            let path = path.clone();
            self.local_call(&path, &shown, span, end);
        }
    }

    /// The module uses diesel's synchronous query methods: it names diesel
    /// and not diesel-async.
    fn uses_sync_diesel(&self) -> bool {
        self.model.is_some_and(|(model, place)| {
            model.uses_crate(place, "diesel") && !model.uses_crate(place, "diesel_async")
        })
    }

    /// The std handle an expression is, when its origin is known: built in
    /// the same chain, bound earlier, or a field or argument of a std type.
    fn origin_of(&self, expr: &Expr) -> Option<Origin> {
        match peel(expr) {
            Expr::Call(call) => {
                let written = written_path(&call.func)?;
                constructed(&self.resolve(&written))
                    .filter(|origin| !(*origin == Origin::TarArchive && reads_from_memory(call)))
            }
            Expr::MethodCall(m) => {
                let inner = self.origin_of(&m.receiver)?;
                let name = m.method.to_string();
                match (inner, name.as_str()) {
                    (_, "unwrap" | "expect" | "unwrap_or_else" | "try_clone" | "by_ref") => {
                        Some(inner)
                    }
                    (Origin::Command, "spawn") => Some(Origin::Child),
                    (Origin::Command, "output" | "status") => None,
                    (Origin::Command, _) => Some(Origin::Command),
                    (Origin::OpenOptions, "open") => Some(Origin::File),
                    (Origin::OpenOptions, _) => Some(Origin::OpenOptions),
                    (Origin::ThreadBuilder, "spawn") => Some(Origin::Thread),
                    (Origin::ThreadBuilder, _) => Some(Origin::ThreadBuilder),
                    (Origin::Stdin, "lock") => Some(Origin::Stdin),
                    _ => None,
                }
            }
            Expr::Try(t) => self.origin_of(&t.expr),
            Expr::Reference(r) => self.origin_of(&r.expr),
            Expr::Path(p) => {
                let name = p.path.get_ident()?.to_string();
                self.origins
                    .get(&name)
                    .copied()
                    .or_else(|| match self.held.get(&name) {
                        Some(Held::Std(origin)) => Some(*origin),
                        _ => None,
                    })
            }
            Expr::Field(field) => match self.field_held(field)? {
                Held::Std(origin) => Some(origin),
                _ => None,
            },
            _ => None,
        }
    }

    /// What `self.field` holds, from the struct's declaration.
    fn field_held(&self, field: &syn::ExprField) -> Option<Held> {
        let (model, place) = self.model?;
        let Expr::Path(base) = peel(&field.base) else {
            return None;
        };
        if !base.path.is_ident("self") {
            return None;
        }
        let syn::Member::Named(member) = &field.member else {
            return None;
        };
        model.field(place.self_type.as_ref()?, &member.to_string())
    }

    /// Which lock a `.lock()` receiver is, when its type is known.
    fn lock_of(&self, receiver: &Expr) -> Option<Held> {
        match peel(receiver) {
            Expr::Path(p) => {
                if let Some(ident) = p.path.get_ident()
                    && let Some(held) = self.held.get(&ident.to_string())
                {
                    return Some(*held);
                }
                let (model, _) = self.model?;
                match self.resolve(&resolve::written(&p.path)) {
                    Resolved::Local(path) => model.static_held(&path),
                    _ => None,
                }
            }
            Expr::Field(field) => self.field_held(field),
            Expr::Reference(r) => self.lock_of(&r.expr),
            Expr::MethodCall(m)
                if matches!(m.method.to_string().as_str(), "clone" | "as_ref" | "deref") =>
            {
                self.lock_of(&m.receiver)
            }
            _ => None,
        }
    }

    /// Arguments whose declared types say what they hold:
    /// `hits: Arc<Mutex<u64>>`, `rx: mpsc::Receiver<Job>`.
    fn remember_arguments(&mut self, sig: &Signature) {
        let Some((model, place)) = self.model else {
            return;
        };
        for input in &sig.inputs {
            let FnArg::Typed(typed) = input else {
                continue;
            };
            let name = binding_name(&typed.pat, true);
            let held = crate::model::classify(model, place, &crate::model::type_paths(&typed.ty));
            if let (Some(name), Some(held)) = (name, held) {
                self.held.insert(name, held);
            }
        }
    }

    /// Remembers what a `let` binds: std handles, channel receivers,
    /// accepted streams, locks whose type is written.
    fn remember_binding(&mut self, stmt: &Stmt) {
        let Stmt::Local(local) = stmt else {
            return;
        };
        let Some(init) = &local.init else {
            return;
        };
        match &local.pat {
            Pat::Tuple(tuple) if tuple.elems.len() == 2 => {
                let names: Vec<Option<String>> =
                    tuple.elems.iter().map(|p| binding_name(p, false)).collect();
                if self.is_std_channel(&init.expr)
                    && let Some(rx) = &names[1]
                {
                    self.origins.insert(rx.clone(), Origin::Receiver);
                }
                if let Expr::MethodCall(m) = peel(unwrapped(&init.expr))
                    && m.method == "accept"
                    && self.origin_of(&m.receiver) == Some(Origin::Listener)
                    && let Some(stream) = &names[0]
                {
                    self.origins.insert(stream.clone(), Origin::Socket);
                }
            }
            pat => {
                let Some(name) = binding_name(pat, false) else {
                    return;
                };
                match self.origin_of(&init.expr) {
                    Some(origin) => {
                        self.origins.insert(name.clone(), origin);
                    }
                    None => {
                        self.origins.remove(&name);
                    }
                }
                if let Some(held) = self.held_by_value(pat, &init.expr) {
                    self.held.insert(name, held);
                }
            }
        }
    }

    /// What a `let`'s value holds, from its written type or its constructor
    /// (`Mutex::new(..)`).
    fn held_by_value(&self, pat: &Pat, init: &Expr) -> Option<Held> {
        let (model, place) = self.model?;
        if let Pat::Type(typed) = pat {
            return crate::model::classify(model, place, &crate::model::type_paths(&typed.ty));
        }
        let Expr::Call(call) = peel(init) else {
            return None;
        };
        let mut written = written_path(&call.func)?;
        written.pop();
        crate::model::held_by(&self.resolve(&written))
    }

    fn is_std_channel(&self, expr: &Expr) -> bool {
        let Expr::Call(call) = peel(expr) else {
            return false;
        };
        let Some(written) = written_path(&call.func) else {
            return false;
        };
        let resolved = self.resolve(&written);
        [
            &["std", "sync", "mpsc", "channel"][..],
            &["std", "sync", "mpsc", "sync_channel"],
        ]
        .iter()
        .any(|pattern| {
            path_rule_match(
                &Matcher::Path {
                    path: pattern,
                    min: 2,
                },
                &resolved,
            )
            .is_some()
        })
    }

    /// A path call: judged unless `awaited`, then its parts, except the
    /// closures an offloading API runs elsewhere. The arguments of a call
    /// that awaits or spawns futures are awaited.
    fn visit_call(&mut self, call: &ExprCall, awaited: bool) {
        let written = written_path(&call.func);
        let resolved = written.as_ref().map(|w| self.resolve(w));
        // std has no async fns to await, so a std call is judged wherever
        // its value goes.
        let judged = !awaited || resolved.as_ref().is_some_and(names_std);
        if let (Some(written), Some(resolved), true) = (&written, &resolved, judged) {
            self.check_call(call, written, resolved);
        }
        let crate_offloads = match (&resolved, self.model) {
            (Some(Resolved::Local(path)), Some((model, _))) => {
                model.fn_info(path).map(|f| f.offloads.clone())
            }
            _ => None,
        };
        let offloaded = resolved
            .as_ref()
            .is_some_and(|r| flow::is_offloader(r.segments(), &self.config.offload));
        let consumes = written
            .as_ref()
            .and_then(|w| w.last())
            .is_some_and(|name| FUTURE_CONSUMERS.contains(&name.as_str()));
        self.visit_expr(&call.func);
        for (i, arg) in call.args.iter().enumerate() {
            let offloaded = offloaded || crate_offloads.as_ref().is_some_and(|o| o.contains(&i));
            if offloaded && self.skip_offloaded(arg) {
                continue;
            }
            if consumes {
                self.visit_awaited(arg);
            } else if awaited {
                self.visit_argument_of_awaited(arg);
            } else {
                self.visit_expr(arg);
            }
        }
    }

    /// A method call, as [`Walker::visit_call`]; the receiver of a future's
    /// adapter (`fut.map_err(..).await`) is awaited too.
    fn visit_method(&mut self, call: &ExprMethodCall, awaited: bool) {
        if !awaited {
            self.check_method(call);
        }
        let name = call.method.to_string();
        let crate_offloads = self
            .model
            .and_then(|(model, _)| model.offloading_method(&name, call.args.len()))
            .map(<[usize]>::to_vec)
            .unwrap_or_default();
        let offloading = flow::is_offloading_method(&name, &self.config.offload);
        let consumes = FUTURE_CONSUMERS.contains(&name.as_str());
        if awaited && FUTURE_ADAPTERS.contains(&name.as_str()) {
            self.visit_awaited(&call.receiver);
        } else {
            self.visit_expr(&call.receiver);
        }
        for (i, arg) in call.args.iter().enumerate() {
            if (offloading || crate_offloads.contains(&i)) && self.skip_offloaded(arg) {
                continue;
            }
            if consumes && !offloading {
                self.visit_awaited(arg);
            } else if awaited {
                self.visit_argument_of_awaited(arg);
            } else {
                self.visit_expr(arg);
            }
        }
    }

    /// An argument of an offloading API: a sync closure is not checked, and
    /// in `spawn_blocking({ let x = ..; move || .. })` only the statements
    /// before the closure are. `false` when the argument is not a closure.
    fn skip_offloaded(&mut self, arg: &Expr) -> bool {
        match peel(arg) {
            closure if is_sync_closure(closure) => true,
            Expr::Block(block) => match block.block.stmts.split_last() {
                Some((Stmt::Expr(tail, None), before)) if is_sync_closure(tail) => {
                    for stmt in before {
                        self.visit_stmt(stmt);
                    }
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// An expression whose value is awaited (by `.await`, a consumer such
    /// as `timeout`, `join!`, `select!`): a call there builds a future.
    fn visit_awaited(&mut self, expr: &Expr) {
        match peel(expr) {
            Expr::Call(call) => self.visit_call(call, true),
            Expr::MethodCall(call) => self.visit_method(call, true),
            // `join_all(vec![a, b])`, `select_all([a, b])`.
            Expr::Array(array) => {
                for elem in &array.elems {
                    self.visit_awaited(elem);
                }
            }
            Expr::Macro(mac) if mac.mac.path.is_ident("vec") => {
                match mac
                    .mac
                    .parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
                {
                    Ok(elems) => {
                        for elem in &elems {
                            self.visit_awaited(elem);
                        }
                    }
                    Err(_) => self.visit_macro_body(&mac.mac),
                }
            }
            other => self.visit_argument_of_awaited(other),
        }
    }

    /// An argument of an awaited call: a sync closure there returns the
    /// future (`retry(|| fetch(..)).await`), so its tail is awaited.
    fn visit_argument_of_awaited(&mut self, arg: &Expr) {
        let Expr::Closure(closure) = peel(arg) else {
            return self.visit_expr(arg);
        };
        if closure.asyncness.is_some() {
            return self.visit_expr(arg);
        }
        match peel(&closure.body) {
            Expr::Block(block) => match block.block.stmts.split_last() {
                Some((Stmt::Expr(tail, None), before)) => {
                    for stmt in before {
                        self.visit_stmt(stmt);
                    }
                    self.visit_awaited(tail);
                }
                _ => self.visit_expr(&closure.body),
            },
            body => self.visit_awaited(body),
        }
    }

    /// The guard a pattern binds from a lock: `let g = m.lock().unwrap();`,
    /// `let Ok(g) = m.lock() else { .. };`, `if let Ok(g) = m.lock()`, a
    /// `match` arm `Ok(g) =>`, `.lock().map_err(..)?`. Only a std or
    /// parking_lot lock: known by its type, or by a `LockResult` unwrapped,
    /// which tokio's `.lock()` future does not return.
    fn guard_from(&self, pat: &Pat, value: &Expr) -> Option<Guard> {
        const LOCKS: &[&str] = &["lock", "read", "write", "try_lock", "try_read", "try_write"];
        const UNWRAPS: &[&str] = &["unwrap", "expect", "unwrap_or_else", "map_err"];
        let name = binding_name(pat, true)?;
        if self.flows.awaited.contains(&name) {
            return None;
        }
        let mut unwrapped = unwraps_a_result(pat);
        let mut expr = peel(value);
        let lock = loop {
            match expr {
                Expr::Try(t) => {
                    unwrapped = true;
                    expr = peel(&t.expr);
                }
                Expr::MethodCall(m) if UNWRAPS.contains(&m.method.to_string().as_str()) => {
                    unwrapped = true;
                    expr = peel(&m.receiver);
                }
                Expr::MethodCall(m)
                    if m.args.is_empty() && LOCKS.contains(&m.method.to_string().as_str()) =>
                {
                    break m;
                }
                _ => return None,
            }
        };
        let method = lock.method.to_string();
        let parking_lot = match self.lock_of(&lock.receiver) {
            Some(Held::StdLock) => false,
            Some(Held::ParkingLotLock) => true,
            Some(_) => return None,
            None if unwrapped && !method.starts_with("try_") => false,
            None => return None,
        };
        Some(Guard {
            name,
            method,
            line: lock.method.span().start().line,
            parking_lot,
        })
    }

    /// Reports each `.await` of `stmts` at which a lock guard is alive:
    /// those bound in `stmts` (unless `only_inherited`) and `inherited`.
    fn check_guards(&mut self, stmts: &[Stmt], inherited: Vec<Guard>, only_inherited: bool) {
        let mut live = inherited;
        for stmt in stmts {
            if let Some(name) = dropped(stmt) {
                live.retain(|g| g.name != name);
                continue;
            }
            if let Stmt::Local(local) = stmt {
                // A new binding of the name ends the old guard's use by name.
                if let Some(name) = binding_name(&local.pat, true) {
                    live.retain(|g| g.name != name);
                }
                if !only_inherited
                    && let Some(init) = &local.init
                    && let Some(guard) = self.guard_from(&local.pat, &init.expr)
                {
                    live.push(guard);
                    continue;
                }
            }
            if !live.is_empty()
                && let Some((dot, await_kw)) = first_await_in_stmt(stmt)
            {
                self.report_guards(&live, dot, await_kw);
            }
        }
    }

    /// `if let Ok(g) = m.lock() { .. }` and `match m.lock() { Ok(g) => .. }`:
    /// the guard is alive in the branch.
    fn check_branch_guards(&mut self, pat: &Pat, value: &Expr, branch: Branch<'_>) {
        let Some(guard) = self.guard_from(pat, value) else {
            return;
        };
        let block = match branch {
            Branch::Block(block) => Some(block),
            Branch::Expr(expr) => match peel(expr) {
                Expr::Block(block) => Some(&block.block),
                _ => None,
            },
        };
        match (block, branch) {
            (Some(block), _) => self.check_guards(&block.stmts, vec![guard], true),
            (None, Branch::Expr(expr)) => {
                if let Some((dot, await_kw)) = first_await_in_expr(expr) {
                    self.report_guards(&[guard], dot, await_kw);
                }
            }
            (None, Branch::Block(_)) => {}
        }
    }

    fn report_guards(&mut self, live: &[Guard], dot: Span, await_kw: Span) {
        let kind = if live.iter().all(|g| g.parking_lot) {
            "parking_lot"
        } else {
            "std"
        };
        let guards: Vec<String> = live
            .iter()
            .map(|g| format!("`{}` (from `.{}()` on line {})", g.name, g.method, g.line))
            .collect();
        let (noun, verb) = if live.len() == 1 {
            ("guard", "is")
        } else {
            ("guards", "are")
        };
        let message = format!(
            "{kind} lock {noun} {} {verb} still held at this `.await`: the lock stays taken while \
             the task is suspended, stalling every thread that needs it; drop the guard before \
             awaiting (`drop({})` or end its block), or use `tokio::sync::Mutex`",
            guards.join(" and "),
            live[0].name
        );
        self.findings.push(Finding::new(
            crate::rules::GUARD_ACROSS_AWAIT,
            message,
            dot,
            await_kw,
        ));
    }

    /// Macro bodies: an expression list (`println!`, `vec!`, `join!`) is
    /// checked as expressions; anything else (`select!`, `json!`, tracing's
    /// fields) piece by piece, between its separators.
    fn visit_macro_body(&mut self, mac: &syn::Macro) {
        let name = mac.path.segments.last().map(|s| s.ident.to_string());
        if let (Some(name), Some((model, _))) = (&name, self.model)
            && model.is_offloading_macro(name)
        {
            return;
        }
        let name = name.as_deref();
        let select = matches!(name, Some("select" | "select_biased"));
        if !select
            && let Ok(args) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
        {
            let awaits_args = matches!(name, Some("join" | "try_join" | "pin"));
            for arg in &args {
                if awaits_args {
                    self.visit_awaited(arg);
                } else {
                    self.visit_expr(arg);
                }
            }
            return;
        }
        self.visit_tokens(mac.tokens.clone(), select);
    }

    /// Checks each piece of `tokens` between `,` `;` `:` `=` and `=>` that
    /// parses as an expression, and the groups inside those that do not. In
    /// `select!`, the future of each branch (`pattern = future =>`) is
    /// awaited.
    fn visit_tokens(&mut self, tokens: TokenStream, select: bool) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut piece = Vec::new();
        let mut after_equals = false;
        let mut i = 0;
        while i < trees.len() {
            let separator = separator_at(&trees, i);
            match separator {
                Some(sep) => {
                    let awaited = select && after_equals && sep.arrow;
                    self.visit_piece(std::mem::take(&mut piece), awaited);
                    after_equals = sep.equals;
                    i += sep.width;
                }
                None => {
                    piece.push(trees[i].clone());
                    i += 1;
                }
            }
        }
        self.visit_piece(piece, false);
    }

    fn visit_piece(&mut self, mut piece: Vec<TokenTree>, awaited: bool) {
        // tracing's `%value` and `?value` field sigils.
        while matches!(piece.first(), Some(TokenTree::Punct(p)) if matches!(p.as_char(), '%' | '?'))
        {
            piece.remove(0);
        }
        if piece.is_empty() {
            return;
        }
        let stream: TokenStream = piece.iter().cloned().collect();
        match syn::parse2::<Expr>(stream) {
            Ok(expr) if awaited => self.visit_awaited(&expr),
            Ok(expr) => self.visit_expr(&expr),
            Err(_) => {
                for tree in piece {
                    if let TokenTree::Group(group) = tree
                        && group.delimiter() != Delimiter::None
                    {
                        self.visit_tokens(group.stream(), false);
                    }
                }
            }
        }
    }
}

/// Where a lock guard from an `if let` or a `match` arm is alive.
#[derive(Clone, Copy)]
enum Branch<'a> {
    Block(&'a Block),
    Expr(&'a Expr),
}

/// A separator of a macro's pieces at `trees[i]`.
struct Separator {
    /// How many tokens it spans (`=>` is two).
    width: usize,
    /// `=`: what follows is a `select!` branch's future.
    equals: bool,
    /// `=>`: what preceded was that future.
    arrow: bool,
}

fn separator_at(trees: &[TokenTree], i: usize) -> Option<Separator> {
    let TokenTree::Punct(p) = &trees[i] else {
        return None;
    };
    let joined_before = i > 0
        && matches!(&trees[i - 1], TokenTree::Punct(prev) if prev.spacing() == Spacing::Joint);
    let next_char = match trees.get(i + 1) {
        Some(TokenTree::Punct(next)) => Some(next.as_char()),
        _ => None,
    };
    let plain = |equals| {
        Some(Separator {
            width: 1,
            equals,
            arrow: false,
        })
    };
    match p.as_char() {
        ',' | ';' => plain(false),
        '=' if p.spacing() == Spacing::Joint && next_char == Some('>') && !joined_before => {
            Some(Separator {
                width: 2,
                equals: false,
                arrow: true,
            })
        }
        '=' if p.spacing() == Spacing::Alone && !joined_before => plain(true),
        ':' if p.spacing() == Spacing::Alone && !joined_before => plain(false),
        _ => None,
    }
}

/// `value?`, `value.unwrap()`: the value inside.
fn unwrapped(expr: &Expr) -> &Expr {
    match peel(expr) {
        Expr::Try(t) => unwrapped(&t.expr),
        Expr::MethodCall(m) if matches!(m.method.to_string().as_str(), "unwrap" | "expect") => {
            unwrapped(&m.receiver)
        }
        other => other,
    }
}

/// diesel's `.load(conn)` takes the connection: `&mut conn`, `conn`
/// (not `Ordering::Relaxed`, as `AtomicBool::load` does).
fn is_connection_argument(arg: &Expr) -> bool {
    match peel(arg) {
        Expr::Reference(_) => true,
        Expr::Path(p) => p.path.get_ident().is_some(),
        _ => false,
    }
}

/// A `Metadata` or `FileType` fetched already: `meta.is_dir()`,
/// `entry.file_type()?.is_file()`, `fs::metadata(p).await?.is_file()`.
fn is_fetched_metadata(receiver: &Expr) -> bool {
    match peel(receiver) {
        Expr::Path(p) => p.path.get_ident().is_some_and(|i| {
            let name = i.to_string();
            name.contains("meta") || name.contains("type")
        }),
        Expr::Try(t) => is_fetched_metadata(&t.expr),
        Expr::Await(_) => true,
        Expr::MethodCall(m) => match m.method.to_string().as_str() {
            "file_type" | "metadata" => true,
            "unwrap" | "expect" => is_fetched_metadata(&m.receiver),
            _ => false,
        },
        Expr::Field(f) => {
            matches!(&f.member, syn::Member::Named(n) if n.to_string().contains("meta"))
        }
        _ => false,
    }
}

/// `CopyOptions::default()`, `tempfile::Builder::new()`: a crate's options
/// are built in memory.
fn builds_options(path: &[String]) -> bool {
    match path {
        [.., ty, last] => {
            (ty.ends_with("Options") || ty == "Builder") && (last == "new" || last == "default")
        }
        _ => false,
    }
}

/// `Archive::new(Cursor::new(..))`: an archive read from memory does no I/O.
fn reads_from_memory(call: &ExprCall) -> bool {
    call.args.first().is_some_and(|arg| match peel(arg) {
        Expr::Call(inner) => written_path(&inner.func)
            .is_some_and(|p| p.len() >= 2 && p[p.len() - 2] == "Cursor" && p[p.len() - 1] == "new"),
        _ => false,
    })
}

/// `user`, `self.user`: a receiver simple enough to name in a message.
fn receiver_text(expr: &Expr) -> Option<String> {
    match peel(expr) {
        Expr::Path(p) => p.path.get_ident().map(ToString::to_string),
        Expr::Field(f) => match &f.member {
            syn::Member::Named(name) => Some(format!("{}.{name}", receiver_text(&f.base)?)),
            syn::Member::Unnamed(_) => None,
        },
        _ => None,
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_block(&mut self, block: &'ast Block) {
        let uses_before = self.local_uses.len();
        for stmt in &block.stmts {
            if let Stmt::Item(syn::Item::Use(item)) = stmt {
                // A glob inside a body is not followed: its names stay as written.
                self.local_uses
                    .extend(
                        resolve::imports(&item.tree).into_iter().filter_map(
                            |import| match import {
                                resolve::Import::Name(name, target) => Some((name, target)),
                                resolve::Import::Glob(_) => None,
                            },
                        ),
                    );
                continue;
            }
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
            self.remember_binding(stmt);
        }
        if self.checks_guards() {
            self.check_guards(&block.stmts, Vec::new(), false);
        }
        self.local_uses.truncate(uses_before);
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let (Some(name), Some(init)) = (binding_name(&local.pat, false), &local.init) {
            let offloaded = self.flows.offloaded.contains(&name) && is_sync_closure(&init.expr);
            let awaited = self.flows.awaited.contains(&name);
            if offloaded || awaited {
                if awaited && !offloaded {
                    self.visit_awaited(&init.expr);
                }
                if let Some((_, diverge)) = &init.diverge {
                    self.visit_expr(diverge);
                }
                return;
            }
        }
        visit::visit_local(self, local);
    }

    fn visit_expr_call(&mut self, call: &'ast ExprCall) {
        self.visit_call(call, false);
    }

    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        self.visit_method(call, false);
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        visit::visit_expr_if(self, e);
        if self.checks_guards()
            && let Expr::Let(cond) = peel(&e.cond)
        {
            self.check_branch_guards(&cond.pat, &cond.expr, Branch::Block(&e.then_branch));
        }
    }

    fn visit_expr_match(&mut self, e: &'ast syn::ExprMatch) {
        visit::visit_expr_match(self, e);
        if self.checks_guards() {
            for arm in &e.arms {
                self.check_branch_guards(&arm.pat, &e.expr, Branch::Expr(&arm.body));
            }
        }
    }

    fn visit_expr_await(&mut self, e: &'ast syn::ExprAwait) {
        if self.async_depth == 0
            && !self.summarizing
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
        if self.summarizing {
            return;
        }
        self.async_depth += 1;
        visit::visit_expr_async(self, e);
        self.async_depth -= 1;
    }

    fn visit_expr_closure(&mut self, e: &'ast syn::ExprClosure) {
        let is_async = e.asyncness.is_some();
        if is_async && self.summarizing {
            return;
        }
        self.async_depth += usize::from(is_async);
        visit::visit_expr_closure(self, e);
        self.async_depth -= usize::from(is_async);
    }

    /// Items nested in a body (helper fns, impls) do not run where the body runs.
    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_macro_body(mac);
    }
}
