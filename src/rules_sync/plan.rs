//! What one ruler needs: the groups to create or update (they differ from
//! what the ruler holds) and the groups to delete (under the prefix, in no
//! file any more). Namespaces without the prefix are never looked at.

use std::collections::BTreeSet;
use std::fmt;

use super::group::Group;
use super::ruler::RuleSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Create, Action::Update, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change<'a> {
    pub action: Action,
    pub namespace: &'a str,
    pub group: &'a str,
    /// The group to POST (create and update).
    pub body: Option<&'a Group>,
}

#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Creates and updates first, then deletes: a group moved to another
    /// namespace exists twice for a moment rather than not at all.
    pub changes: Vec<Change<'a>>,
    pub unchanged: usize,
    /// Deletions not made because the file that owns the namespace is
    /// invalid right now, or because deletions are held.
    pub held: Vec<(&'a str, &'a str)>,
}

/// Whose groups may be deleted.
pub struct Guard<'a> {
    pub prefix: &'a str,
    pub keep: &'a BTreeSet<String>,
    pub hold_all: bool,
}

pub fn plan<'a>(desired: &'a RuleSet, actual: &'a RuleSet, guard: &Guard) -> Plan<'a> {
    let mut p = Plan::default();
    for (ns, groups) in desired {
        let held = actual.get(ns);
        for g in groups {
            match held.and_then(|hs| hs.iter().find(|h| h.name == g.name)) {
                Some(h) if h == g => p.unchanged += 1,
                found => p.changes.push(Change {
                    action: if found.is_some() {
                        Action::Update
                    } else {
                        Action::Create
                    },
                    namespace: ns,
                    group: &g.name,
                    body: Some(g),
                }),
            }
        }
    }
    for (ns, groups) in actual.iter().filter(|(ns, _)| ns.starts_with(guard.prefix)) {
        let wanted = desired.get(ns);
        for g in groups {
            if wanted.is_some_and(|w| w.iter().any(|d| d.name == g.name)) {
                continue;
            }
            if guard.hold_all || guard.keep.contains(ns) {
                p.held.push((ns, &g.name));
                continue;
            }
            p.changes.push(Change {
                action: Action::Delete,
                namespace: ns,
                group: &g.name,
                body: None,
            });
        }
    }
    p
}

impl fmt::Display for Change<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.action.as_str(),
            self.namespace,
            self.group
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules_sync::group::Rule;

    fn group(name: &str, expr: &str) -> Group {
        Group {
            name: name.into(),
            interval: None,
            query_offset: None,
            limit: 0,
            source_tenants: vec![],
            rules: vec![Rule {
                record: Some("x".into()),
                alert: None,
                expr: expr.into(),
                for_: None,
                keep_firing_for: None,
                labels: Default::default(),
                annotations: Default::default(),
            }],
        }
    }

    fn set(entries: &[(&str, &[Group])]) -> RuleSet {
        entries
            .iter()
            .map(|(ns, gs)| (ns.to_string(), gs.to_vec()))
            .collect()
    }

    fn shown(p: &Plan) -> Vec<String> {
        p.changes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn creates_updates_and_deletes_only_under_the_prefix() {
        let desired = set(&[
            ("lgtm-a", &[group("same", "up"), group("changed", "up2")]),
            ("lgtm-new", &[group("g", "up")]),
        ]);
        let actual = set(&[
            (
                "lgtm-a",
                &[
                    group("same", "up"),
                    group("changed", "up"),
                    group("gone", "up"),
                ],
            ),
            ("lgtm-old", &[group("g", "up")]),
            ("team-owned", &[group("g", "up")]),
        ]);
        let keep = BTreeSet::new();
        let guard = Guard {
            prefix: "lgtm-",
            keep: &keep,
            hold_all: false,
        };
        let p = plan(&desired, &actual, &guard);
        assert_eq!(
            shown(&p),
            [
                "update lgtm-a/changed",
                "create lgtm-new/g",
                "delete lgtm-a/gone",
                "delete lgtm-old/g"
            ]
        );
        assert_eq!(p.unchanged, 1);
        assert!(p.held.is_empty());
    }

    #[test]
    fn kept_namespaces_and_held_deletes_delete_nothing() {
        let desired = set(&[]);
        let actual = set(&[
            ("lgtm-a", &[group("g", "up")]),
            ("lgtm-b", &[group("g", "up")]),
        ]);
        let keep: BTreeSet<String> = ["lgtm-a".to_string()].into();
        let p = plan(
            &desired,
            &actual,
            &Guard {
                prefix: "lgtm-",
                keep: &keep,
                hold_all: false,
            },
        );
        assert_eq!(shown(&p), ["delete lgtm-b/g"]);
        assert_eq!(p.held, [("lgtm-a", "g")]);
        let p = plan(
            &desired,
            &actual,
            &Guard {
                prefix: "lgtm-",
                keep: &keep,
                hold_all: true,
            },
        );
        assert!(p.changes.is_empty());
        assert_eq!(p.held.len(), 2);
    }
}
