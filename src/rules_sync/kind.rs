//! Which ruler a rule file is for: Mimir's (PromQL rules, on the tenant's
//! prometheus upstream) or Loki's (LogQL rules, on its loki upstream). Both
//! speak the same rules API under their own path.

/// A PrometheusRule's label naming its ruler (`mimir` when absent).
pub const RULER_LABEL: &str = "lgtm-proxy.io/ruler";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RulerKind {
    Mimir,
    Loki,
}

impl RulerKind {
    pub const ALL: [RulerKind; 2] = [RulerKind::Mimir, RulerKind::Loki];

    /// The `ruler` label of metrics and the value files name.
    pub fn as_str(self) -> &'static str {
        match self {
            RulerKind::Mimir => "mimir",
            RulerKind::Loki => "loki",
        }
    }

    /// A file's `ruler` value; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The tenant's upstream whose ruler this is.
    pub fn upstream(self) -> &'static str {
        match self {
            RulerKind::Mimir => "prometheus",
            RulerKind::Loki => "loki",
        }
    }

    /// The rules API under the upstream's URL.
    pub fn rules_path(self) -> &'static str {
        match self {
            RulerKind::Mimir => "/api/prom/config/v1/rules",
            RulerKind::Loki => "/loki/api/v1/rules",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for k in RulerKind::ALL {
            assert_eq!(RulerKind::parse(k.as_str()), Some(k));
        }
        for bad in ["", "Loki", "prometheus", "loki ", "tempo"] {
            assert_eq!(RulerKind::parse(bad), None, "{bad:?}");
        }
        assert_eq!(RulerKind::Loki.rules_path(), "/loki/api/v1/rules");
        assert_eq!(RulerKind::Mimir.upstream(), "prometheus");
    }
}
