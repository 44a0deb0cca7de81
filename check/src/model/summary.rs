//! What each sync fn of the crate reaches that blocks: its own blocking
//! calls, then, to a fixed point, those of the helpers it calls.

use std::collections::HashMap;

use super::{ItemPath, Model};
use crate::rules::Kind;

/// A blocking call in a sync fn's own body.
#[derive(Clone, Debug)]
pub(crate) struct Leaf {
    pub(crate) rule: String,
    pub(crate) kind: Kind,
    /// How the call is named in messages: "`std::fs::read`".
    pub(crate) call: String,
    pub(crate) line: usize,
}

/// A call from a sync fn's body to another fn of the crate.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) target: ItemPath,
    pub(crate) line: usize,
}

/// One sync fn's body, as walked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Raw {
    pub(crate) leaves: Vec<Leaf>,
    pub(crate) calls: Vec<Call>,
}

/// One fn on the way to a blocking call, and the line of its body where
/// the way goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    /// `User::check_password`, `crypto::verify`.
    pub(crate) function: String,
    pub(crate) file: String,
    pub(crate) line: usize,
}

/// The shortest way from a helper down to a blocking call.
#[derive(Clone, Debug)]
pub(crate) struct Chain {
    pub(crate) rule: String,
    /// The blocking call at the end, named as in messages.
    pub(crate) leaf: String,
    /// From the helper called first to the fn that makes the blocking call.
    pub(crate) hops: Vec<Hop>,
}

impl Chain {
    /// "`User::check_password` calls `crypto::verify` (src/user.rs:40),
    /// which runs `pbkdf2::pbkdf2_hmac` (src/crypto.rs:31)".
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("`{}`", self.hops[0].function);
        for pair in self.hops.windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            text.push_str(&format!(
                " calls `{}` ({}:{}), which",
                to.function, from.file, from.line
            ));
        }
        let last = self.hops.last().expect("a chain has a hop");
        text.push_str(&format!(
            " runs {} ({}:{})",
            self.leaf, last.file, last.line
        ));
        text
    }
}

/// The chains of one fn, one for each kind of work that matters to a lane.
#[derive(Clone, Debug, Default)]
pub(crate) struct Summary {
    blocking: Option<Chain>,
    cpu_heavy: Option<Chain>,
}

impl Summary {
    pub(crate) fn get(&self, kind: Kind) -> Option<&Chain> {
        match kind {
            Kind::Blocking => self.blocking.as_ref(),
            Kind::CpuHeavy => self.cpu_heavy.as_ref(),
            Kind::PathStat => None,
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut Option<Chain> {
        match kind {
            Kind::CpuHeavy => &mut self.cpu_heavy,
            _ => &mut self.blocking,
        }
    }
}

const KINDS: [Kind; 2] = [Kind::Blocking, Kind::CpuHeavy];

/// Every fn's chains: its first own blocking call of each kind, else the
/// shortest way through the helpers it calls. Each round lengthens chains by
/// one call and reads only the previous round, so the chains found are
/// shortest and do not depend on the order fns are visited.
pub(crate) fn fixed_point(
    model: &Model,
    raw: HashMap<ItemPath, Raw>,
) -> HashMap<ItemPath, Summary> {
    let mut order: Vec<&ItemPath> = raw.keys().collect();
    order.sort();
    let hop = |path: &ItemPath, line: usize| Hop {
        function: path.short(),
        file: model
            .fns
            .get(path)
            .map_or_else(String::new, |f| f.file.clone()),
        line,
    };
    let mut summaries: HashMap<ItemPath, Summary> = HashMap::new();
    for path in &order {
        for kind in KINDS {
            if let Some(leaf) = raw[*path].leaves.iter().find(|l| l.kind == kind) {
                *summaries.entry((*path).clone()).or_default().slot(kind) = Some(Chain {
                    rule: leaf.rule.clone(),
                    leaf: leaf.call.clone(),
                    hops: vec![hop(path, leaf.line)],
                });
            }
        }
    }
    loop {
        let mut found = Vec::new();
        for path in &order {
            for kind in KINDS {
                if summaries.get(*path).and_then(|s| s.get(kind)).is_some() {
                    continue;
                }
                let reached = raw[*path].calls.iter().find_map(|call| {
                    let chain = summaries.get(&call.target)?.get(kind)?;
                    let mut hops = vec![hop(path, call.line)];
                    hops.extend(chain.hops.iter().cloned());
                    Some(Chain {
                        rule: chain.rule.clone(),
                        leaf: chain.leaf.clone(),
                        hops,
                    })
                });
                if let Some(chain) = reached {
                    found.push(((*path).clone(), kind, chain));
                }
            }
        }
        if found.is_empty() {
            return summaries;
        }
        for (path, kind, chain) in found {
            *summaries.entry(path).or_default().slot(kind) = Some(chain);
        }
    }
}
