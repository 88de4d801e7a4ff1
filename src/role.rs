//! Which work a process does (`--role`, env `LGTM_ROLE`): `all` serves the
//! proxied routes and runs the background work (remote-write jobs, rules
//! sync); `proxy` only serves; `jobs` only runs the background work and
//! serves the own endpoints. Background work pushes to Grafana Cloud and
//! writes rulers, so it belongs in one process: a scaled-out proxy runs
//! `proxy` beside a single `jobs` replica, with one config for both.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    All,
    Proxy,
    Jobs,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected all, proxy or jobs")]
pub struct UnknownRole(String);

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Proxy => "proxy",
            Role::Jobs => "jobs",
        }
    }

    /// Runs remote-write jobs and rules sync.
    pub fn runs_jobs(self) -> bool {
        self != Role::Proxy
    }

    /// Serves the proxied routes (otherwise every one answers 404).
    pub fn proxies(self) -> bool {
        self != Role::Jobs
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::All, Role::Proxy, Role::Jobs]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_say_what_they_run() {
        let parsed: Vec<Role> = ["all", "proxy", "jobs"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(parsed, [Role::All, Role::Proxy, Role::Jobs]);
        assert!(Role::All.runs_jobs() && Role::All.proxies());
        assert!(!Role::Proxy.runs_jobs() && Role::Proxy.proxies());
        assert!(Role::Jobs.runs_jobs() && !Role::Jobs.proxies());
        let e = "Jobs".parse::<Role>().unwrap_err().to_string();
        assert!(
            e.contains("\"Jobs\"") && e.contains("all, proxy or jobs"),
            "{e}"
        );
        assert_eq!(Role::default(), Role::All);
    }
}
