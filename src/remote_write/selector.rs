//! The access rule: a job reads only series of its own namespace. Each
//! pattern (a metric name or a series selector) is parsed with a real
//! PromQL parser and gets a `namespace="<ns>"` matcher; a pattern that is
//! not a plain selector, or that names another namespace, is refused.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr};

pub const NAMESPACE_LABEL: &str = "namespace";

/// Why a pattern cannot be a job's selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("not a valid PromQL selector: {0}")]
    Invalid(String),
    #[error(
        "must be a metric name or a series selector like {{job=\"webapp\"}}, not an expression"
    )]
    Expression,
    #[error("offset and @ modifiers are not allowed")]
    Modifier,
    #[error("selects namespace \"{selected}\" but the job belongs to namespace \"{namespace}\"")]
    OtherNamespace { selected: String, namespace: String },
}

/// The selector to query, with the namespace enforced on every `or` branch.
pub fn enforce_namespace(pattern: &str, namespace: &str) -> Result<String, SelectorError> {
    let expr = parser::parse(pattern).map_err(SelectorError::Invalid)?;
    let Expr::VectorSelector(mut vs) = expr else {
        return Err(SelectorError::Expression);
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(SelectorError::Modifier);
    }
    if vs.matchers.or_matchers.is_empty() {
        enforce(&mut vs.matchers.matchers, namespace)?;
    } else {
        for branch in &mut vs.matchers.or_matchers {
            enforce(branch, namespace)?;
        }
    }
    Ok(vs.to_string())
}

fn enforce(matchers: &mut Vec<Matcher>, namespace: &str) -> Result<(), SelectorError> {
    let mut present = false;
    for m in matchers.iter() {
        if m.name != NAMESPACE_LABEL {
            continue;
        }
        match &m.op {
            MatchOp::Equal if m.value == namespace => present = true,
            MatchOp::Equal => {
                return Err(SelectorError::OtherNamespace {
                    selected: m.value.clone(),
                    namespace: namespace.to_string(),
                })
            }
            // Other operators narrow within what the added equality allows.
            _ => {}
        }
    }
    if !present {
        matchers.push(Matcher::new(MatchOp::Equal, NAMESPACE_LABEL, namespace));
    }
    Ok(())
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | 'A'..='Z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reparse(sel: &str) -> Vec<(String, String, String)> {
        let Ok(Expr::VectorSelector(vs)) = parser::parse(sel) else {
            panic!("{sel} does not parse back");
        };
        let mut all: Vec<_> = vs
            .matchers
            .matchers
            .iter()
            .map(|m| (m.name.clone(), m.op.to_string(), m.value.clone()))
            .collect();
        if let Some(n) = vs.name {
            all.push(("__name__".into(), "=".into(), n));
        }
        all.sort();
        all.dedup();
        all
    }

    #[test]
    fn adds_namespace_to_a_metric_name() {
        let s = enforce_namespace("http_requests_total", "webapp-team").unwrap();
        assert_eq!(
            reparse(&s),
            vec![
                ("__name__".into(), "=".into(), "http_requests_total".into()),
                ("namespace".into(), "=".into(), "webapp-team".into()),
            ]
        );
    }

    #[test]
    fn adds_namespace_to_a_selector() {
        let s = enforce_namespace(r#"{job="webapp"}"#, "webapp-team").unwrap();
        assert_eq!(
            reparse(&s),
            vec![
                ("job".into(), "=".into(), "webapp".into()),
                ("namespace".into(), "=".into(), "webapp-team".into()),
            ]
        );
    }

    #[test]
    fn keeps_the_same_namespace_once() {
        let s = enforce_namespace(r#"up{namespace="webapp-team"}"#, "webapp-team").unwrap();
        assert_eq!(s.matches("namespace=").count(), 1, "{s}");
    }

    #[test]
    fn narrowing_matchers_keep_the_equality() {
        let s = enforce_namespace(r#"up{namespace=~"webapp-.*"}"#, "webapp-team").unwrap();
        let m = reparse(&s);
        assert!(m.contains(&("namespace".into(), "=".into(), "webapp-team".into())));
        assert!(m.contains(&("namespace".into(), "=~".into(), "webapp-.*".into())));
        // A negative matcher cannot widen the selection either.
        let s = enforce_namespace(r#"up{namespace!="x"}"#, "webapp-team").unwrap();
        assert!(reparse(&s).contains(&("namespace".into(), "=".into(), "webapp-team".into())));
    }

    #[test]
    fn rejects_another_namespace() {
        let e = enforce_namespace(r#"up{namespace="kube-system"}"#, "webapp-team").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"selects namespace "kube-system" but the job belongs to namespace "webapp-team""#
        );
    }

    #[test]
    fn every_or_branch_is_enforced() {
        let s = enforce_namespace(r#"{job="a" or job="b"}"#, "t").unwrap();
        assert_eq!(s.matches(r#"namespace="t""#).count(), 2, "{s}");
        let e = enforce_namespace(r#"{job="a" or namespace="other"}"#, "t").unwrap_err();
        assert!(matches!(e, SelectorError::OtherNamespace { selected, .. } if selected == "other"));
    }

    #[test]
    fn rejects_expressions_and_modifiers() {
        for bad in [
            "sum(up)",
            "rate(up[5m])",
            "up offset 5m",
            "up @ 1700000000",
            "up[5m]",
            "1 + 1",
            "up{",
        ] {
            assert!(enforce_namespace(bad, "t").is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn escapes_values() {
        let s = enforce_namespace(r#"{path="a\"b"}"#, r#"x"y"#).unwrap();
        let m = reparse(&s);
        assert!(
            m.contains(&("path".into(), "=".into(), "a\"b".into())),
            "{s}"
        );
        assert!(
            m.contains(&("namespace".into(), "=".into(), "x\"y".into())),
            "{s}"
        );
    }

    #[test]
    fn label_names() {
        assert!(valid_label_name("tenant"));
        assert!(valid_label_name("_x1"));
        assert!(!valid_label_name("1x"));
        assert!(!valid_label_name("a-b"));
        assert!(!valid_label_name(""));
    }
}
