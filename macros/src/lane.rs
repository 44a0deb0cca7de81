use lanes_check::Scope;

/// The three attributes this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    IoBound,
    Blocking,
    CpuBound,
}

impl Lane {
    /// How the rule engine checks this lane's bodies.
    pub(crate) fn scope(self) -> Scope {
        match self {
            Lane::IoBound => Scope::IoBound,
            Lane::Blocking => Scope::Blocking,
            Lane::CpuBound => Scope::CpuBound,
        }
    }

    /// `#[io_bound]`, `#[blocking]` or `#[cpu_bound]`, for messages.
    pub(crate) fn attribute(self) -> &'static str {
        self.scope().attribute()
    }
}
