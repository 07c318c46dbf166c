//! Insecure versions: the operator's block list of Home Assistant releases. A blocked
//! instance gets HTTP 409 with the block's reason on `snitun_token`, which Home Assistant
//! shows as "insecure version" and does not retry; everything else (register, discovery,
//! the account) keeps working. An owner may override the block for their instance at their
//! own risk; when the operator blocks another version later, every override is cleared and
//! the instance is refused again until its owner overrides anew. Every block, unblock,
//! override and cleared override is in the audit log, written in the change's transaction.
//!
//! Only Home Assistant clients whose `User-Agent` names a readable version are judged:
//! Sluice's connector and agents without a version are never blocked.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::{Client, HaVersion};
use crate::store::{Actor, Instance, Store, StoreError, VersionBlock};

/// The longest block reason kept (it is shown to the owner).
pub const MAX_REASON_LEN: usize = 500;

/// How a spec compares a version with its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==` (also a bare version)
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

/// A set of versions: `<=2021.1.4`, `<2022.1.0`, `==2023.5.2` (or `2023.5.2`), `>=`, `>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionSpec {
    /// The comparison.
    pub cmp: Comparison,
    /// The version compared with.
    pub version: HaVersion,
}

impl FromStr for VersionSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (cmp, rest) = [
            ("<=", Comparison::Le),
            (">=", Comparison::Ge),
            ("==", Comparison::Eq),
            ("<", Comparison::Lt),
            (">", Comparison::Gt),
            ("=", Comparison::Eq),
        ]
        .iter()
        .find_map(|(p, c)| t.strip_prefix(p).map(|r| (*c, r)))
        .unwrap_or((Comparison::Eq, t));
        let rest = rest.trim();
        let numeric = rest.split('.').count() >= 2
            && rest
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !numeric {
            return Err(format!(
                "{s:?} is not a version spec (like <=2021.1.4, <2022.1, ==2023.5.2)"
            ));
        }
        Ok(Self {
            cmp,
            version: rest.parse()?,
        })
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.cmp {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "==",
            Comparison::Ge => ">=",
            Comparison::Gt => ">",
        };
        write!(f, "{op}{}", self.version)
    }
}

impl VersionSpec {
    /// Whether `v` is in the set.
    pub fn matches(&self, v: HaVersion) -> bool {
        match self.cmp {
            Comparison::Lt => v < self.version,
            Comparison::Le => v <= self.version,
            Comparison::Eq => v == self.version,
            Comparison::Ge => v >= self.version,
            Comparison::Gt => v > self.version,
        }
    }
}

/// Why a block-list operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// Not a spec.
    #[error("{0}")]
    BadSpec(String),
    /// Empty or too long.
    #[error("the reason must be 1 to {MAX_REASON_LEN} bytes")]
    BadReason,
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `check` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not blocked, or blocked and overridden by the owner.
    Allowed,
    /// Blocked, with the reason to give.
    Blocked(String),
}

/// The block list over a store.
#[derive(Debug, Clone)]
pub struct Versions {
    store: Arc<dyn Store>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Versions {
    /// The block list in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Blocks `spec` (stored in its canonical form). A spec not blocked before clears every
    /// owner's override; the cleared instances are returned. Blocking a spec again only
    /// replaces its reason.
    pub async fn block(
        &self,
        spec: &str,
        reason: &str,
        actor: &str,
    ) -> Result<Vec<String>, VersionError> {
        let spec: VersionSpec = spec.parse().map_err(VersionError::BadSpec)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_LEN {
            return Err(VersionError::BadReason);
        }
        let by = Actor {
            who: actor,
            at: now(),
        };
        Ok(self
            .store
            .block_version(&spec.to_string(), reason, by)
            .await?)
    }

    /// Removes a block; false if `spec` was not blocked.
    pub async fn unblock(&self, spec: &str, actor: &str) -> Result<bool, VersionError> {
        let spec: VersionSpec = spec.parse().map_err(VersionError::BadSpec)?;
        let by = Actor {
            who: actor,
            at: now(),
        };
        Ok(self.store.unblock_version(&spec.to_string(), by).await?)
    }

    /// The block list, oldest first.
    pub async fn list(&self) -> Result<Vec<VersionBlock>, VersionError> {
        Ok(self.store.blocked_versions().await?)
    }

    /// The owner of `instance` accepts the risk: its blocked version may connect until the
    /// operator blocks another.
    pub async fn override_for(&self, instance: &Instance, actor: &str) -> Result<(), VersionError> {
        let by = Actor {
            who: actor,
            at: now(),
        };
        Ok(self
            .store
            .set_override(&instance.id, &instance.name, by)
            .await?)
    }

    /// Whether `client` may have a tunnel token for `instance`.
    pub async fn check(
        &self,
        client: Client,
        instance: &Instance,
    ) -> Result<Verdict, VersionError> {
        let Client::HomeAssistant(Some(version)) = client else {
            return Ok(Verdict::Allowed);
        };
        let blocks = self.store.blocked_versions().await?;
        let hit = blocks.iter().find(|b| {
            b.spec
                .parse::<VersionSpec>()
                .is_ok_and(|spec| spec.matches(version))
        });
        let Some(block) = hit else {
            return Ok(Verdict::Allowed);
        };
        if self.store.has_override(&instance.id).await? {
            return Ok(Verdict::Allowed);
        }
        Ok(Verdict::Blocked(format!(
            "Home Assistant {version} is blocked ({}): {}; update it, or override the block \
             on the account page at your own risk",
            block.spec, block.reason
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn specs_parse_print_and_match() {
        let s: VersionSpec = "<=2021.1.4".parse().unwrap();
        assert_eq!(s.to_string(), "<=2021.1.4");
        assert!(s.matches(HaVersion(2021, 1, 4)));
        assert!(s.matches(HaVersion(2020, 12, 9)));
        assert!(!s.matches(HaVersion(2021, 1, 5)));
        assert_eq!(
            "2023.5.2".parse::<VersionSpec>().unwrap().to_string(),
            "==2023.5.2"
        );
        assert_eq!(
            " < 2022.1 ".parse::<VersionSpec>().unwrap().to_string(),
            "<2022.1.0"
        );
        for bad in ["", "<=", "2021", "<=2021.x.1", "~2021.1.1", "<=2021.1.4b1"] {
            assert!(bad.parse::<VersionSpec>().is_err(), "{bad:?}");
        }
    }

    fn cmp() -> impl Strategy<Value = Comparison> {
        prop_oneof![
            Just(Comparison::Lt),
            Just(Comparison::Le),
            Just(Comparison::Eq),
            Just(Comparison::Ge),
            Just(Comparison::Gt)
        ]
    }

    proptest! {
        #[test]
        fn a_spec_reads_back_and_matches_by_order(
            c in cmp(), a in (2015u32..2035, 1u32..13, 0u32..20), b in (2015u32..2035, 1u32..13, 0u32..20),
        ) {
            let spec = VersionSpec { cmp: c, version: HaVersion(a.0, a.1, a.2) };
            prop_assert_eq!(spec.to_string().parse::<VersionSpec>().unwrap(), spec);
            let v = HaVersion(b.0, b.1, b.2);
            let expect = match c {
                Comparison::Lt => v < spec.version,
                Comparison::Le => v <= spec.version,
                Comparison::Eq => v == spec.version,
                Comparison::Ge => v >= spec.version,
                Comparison::Gt => v > spec.version,
            };
            prop_assert_eq!(spec.matches(v), expect);
        }
    }
}
