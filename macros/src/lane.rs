use lanes_check::Scope;
use syn::Signature;

/// The four attributes this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    IoBound,
    Blocking,
    CpuBound,
    Background,
}

impl Lane {
    /// How the rule engine checks the body of `sig` on this lane: a
    /// `#[background]` fn's jobs run on a tokio worker when it is `async`,
    /// on the blocking lane when it is not.
    pub(crate) fn scope(self, sig: &Signature) -> Scope {
        match self {
            Lane::IoBound => Scope::IoBound,
            Lane::Blocking => Scope::Blocking,
            Lane::CpuBound => Scope::CpuBound,
            Lane::Background if sig.asyncness.is_some() => Scope::BackgroundAsync,
            Lane::Background => Scope::BackgroundSync,
        }
    }

    /// `#[io_bound]`, `#[blocking]`, `#[cpu_bound]` or `#[background]`,
    /// for messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Lane::IoBound => "#[io_bound]",
            Lane::Blocking => "#[blocking]",
            Lane::CpuBound => "#[cpu_bound]",
            Lane::Background => "#[background]",
        }
    }
}
