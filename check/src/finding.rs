use proc_macro2::{Ident, Span, TokenStream, TokenTree};

/// Where the checked code runs; decides which rules apply and how a finding
/// is worded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The body of an `#[io_bound] async fn`: it runs on a tokio worker.
    IoBound,
    /// The body of a `#[blocking] fn`: blocking is its purpose, `.await` is not.
    Blocking,
    /// The body of a `#[cpu_bound] fn`: computation only.
    CpuBound,
    /// The body of a `#[background] async fn`: its jobs run on a tokio
    /// worker, so it is checked like `#[io_bound]`.
    BackgroundAsync,
    /// The body of a `#[background] fn`: its jobs run on the blocking lane.
    BackgroundSync,
    /// Async code with no lane attribute, as `cargo lanes audit` reads it:
    /// checked like `#[io_bound]`.
    Async,
}

impl Scope {
    /// The attribute as the user wrote it, for messages (`async code` for
    /// the audit's scope).
    pub fn attribute(self) -> &'static str {
        match self {
            Scope::IoBound => "#[io_bound]",
            Scope::Blocking => "#[blocking]",
            Scope::CpuBound => "#[cpu_bound]",
            Scope::BackgroundAsync | Scope::BackgroundSync => "#[background]",
            Scope::Async => "async code",
        }
    }
}

/// How sure a finding is that the server stalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A blocking call: the macros refuse it, the audit fails on it.
    Error,
    /// Usually short (a path stat on a local disk): the audit reports it,
    /// the macros let it pass.
    Warning,
}

/// One mistake found in a body: the tokens to underline and what to say.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The rule id (`thread-sleep`, `await-in-sync-lane`, a `lanes.toml`
    /// path, ..): what `allow` in `lanes.toml` takes.
    pub rule: String,
    /// What blocks and what to do instead; a call into a helper of the
    /// crate carries the way down to the blocking line.
    pub message: String,
    /// Whether it fails the audit and the build, or is a warning.
    pub severity: Severity,
    /// First and last token of the offending code, so the error underlines
    /// all of it.
    pub start: Span,
    /// See `start`.
    pub end: Span,
}

impl Finding {
    pub(crate) fn new(rule: impl Into<String>, message: String, start: Span, end: Span) -> Self {
        Finding {
            rule: rule.into(),
            message,
            severity: Severity::Error,
            start,
            end,
        }
    }

    pub(crate) fn with_severity(self, severity: Severity) -> Self {
        Finding { severity, ..self }
    }

    /// The message with the rule id that `allow` takes, for the findings
    /// that can be allowed.
    pub fn message_with_rule(&self) -> String {
        match self.rule.as_str() {
            "await-in-sync-lane" | "allow-without-reason" => self.message.clone(),
            rule if crate::BUILTIN.iter().any(|r| r.id == rule) => {
                format!("{} [lanes::{rule}]", self.message)
            }
            rule => format!("{} [lanes.toml: {rule}]", self.message),
        }
    }

    /// The finding as a compile error over the offending tokens.
    pub fn to_syn_error(&self) -> syn::Error {
        // `new_spanned` takes its range from the first and last token of what
        // it is given; two placeholder tokens carry the two ends.
        let ends: TokenStream = [self.start, self.end]
            .into_iter()
            .map(|span| TokenTree::Ident(Ident::new("x", span)))
            .collect();
        syn::Error::new_spanned(ends, self.message_with_rule())
    }
}
