//! Collected series and what happens to them between the source and the
//! target: merge and de-duplicate across sources, keep only the job's
//! namespace, add the job's labels.

use std::collections::BTreeMap;

use serde::Serialize;

use super::selector::NAMESPACE_LABEL;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// Series from several sources, one per label set: the newest sample wins.
#[derive(Default)]
pub struct Merged(BTreeMap<Labels, (f64, i64)>);

impl Merged {
    pub fn add(&mut self, labels: Labels, value: f64, timestamp_ms: i64) {
        match self.0.get_mut(&labels) {
            Some(s) if s.1 >= timestamp_ms => {}
            Some(s) => *s = (value, timestamp_ms),
            None => {
                self.0.insert(labels, (value, timestamp_ms));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The access rule's last line of defence: series whose namespace is
    /// not the job's (or missing) are dropped, whatever the source returned.
    /// Returns the kept series and how many were dropped.
    pub fn into_namespace(self, namespace: &str) -> (Vec<Series>, usize) {
        let total = self.0.len();
        let kept: Vec<Series> = self
            .0
            .into_iter()
            .filter(|(l, _)| l.get(NAMESPACE_LABEL).map(String::as_str) == Some(namespace))
            .map(|(labels, (value, timestamp_ms))| Series {
                labels,
                value,
                timestamp_ms,
            })
            .collect();
        let dropped = total - kept.len();
        (kept, dropped)
    }
}

/// Add the job's labels. A clash keeps the source's value when
/// `honor_labels`, else moves it to `exported_<name>` as Prometheus does.
pub fn enrich(labels: &mut Labels, extra: &Labels, honor_labels: bool) {
    for (k, v) in extra {
        match labels.get(k) {
            None => {
                labels.insert(k.clone(), v.clone());
            }
            Some(existing) if existing == v || honor_labels => {}
            Some(_) => {
                let old = labels.remove(k).unwrap_or_default();
                labels.insert(free_exported_name(labels, k), old);
                labels.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Pushgateway overwrites `job` and `instance` with its grouping key: keep
/// the series' own values as `exported_job` / `exported_instance`.
pub fn export_grouping_labels(labels: &mut Labels) {
    for k in ["job", "instance"] {
        if let Some(v) = labels.remove(k) {
            let name = free_exported_name(labels, k);
            labels.insert(name, v);
        }
    }
}

/// `exported_<name>`, prefixed again while taken (as Prometheus does).
fn free_exported_name(labels: &Labels, name: &str) -> String {
    let mut candidate = format!("exported_{name}");
    while labels.contains_key(&candidate) {
        candidate = format!("exported_{candidate}");
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn honor_labels_false_renames_the_source_label() {
        let mut l = labels(&[("__name__", "up"), ("tenant", "src"), ("job", "x")]);
        enrich(&mut l, &labels(&[("tenant", "team"), ("a", "b")]), false);
        assert_eq!(
            l,
            labels(&[
                ("__name__", "up"),
                ("a", "b"),
                ("exported_tenant", "src"),
                ("job", "x"),
                ("tenant", "team"),
            ])
        );
    }

    #[test]
    fn honor_labels_true_keeps_the_source_value() {
        let mut l = labels(&[("tenant", "src")]);
        enrich(&mut l, &labels(&[("tenant", "team"), ("a", "b")]), true);
        assert_eq!(l, labels(&[("a", "b"), ("tenant", "src")]));
    }

    #[test]
    fn same_value_is_no_clash() {
        let mut l = labels(&[("tenant", "team")]);
        enrich(&mut l, &labels(&[("tenant", "team")]), false);
        assert_eq!(l, labels(&[("tenant", "team")]));
    }

    #[test]
    fn exported_name_taken_is_prefixed_again() {
        let mut l = labels(&[("tenant", "a"), ("exported_tenant", "b")]);
        enrich(&mut l, &labels(&[("tenant", "c")]), false);
        assert_eq!(
            l,
            labels(&[
                ("exported_exported_tenant", "a"),
                ("exported_tenant", "b"),
                ("tenant", "c"),
            ])
        );
    }

    #[test]
    fn grouping_labels_are_exported() {
        let mut l = labels(&[("job", "webapp"), ("instance", "h:1"), ("x", "y")]);
        export_grouping_labels(&mut l);
        assert_eq!(
            l,
            labels(&[
                ("exported_instance", "h:1"),
                ("exported_job", "webapp"),
                ("x", "y")
            ])
        );
    }

    #[test]
    fn merge_dedups_by_label_set_and_keeps_the_newest() {
        let mut m = Merged::default();
        let a = labels(&[("__name__", "up"), ("namespace", "t")]);
        m.add(a.clone(), 1.0, 1000);
        m.add(a.clone(), 2.0, 2000);
        m.add(a.clone(), 3.0, 1500);
        m.add(
            labels(&[("__name__", "up"), ("namespace", "other")]),
            1.0,
            1,
        );
        m.add(labels(&[("__name__", "up")]), 1.0, 1);
        assert_eq!(m.len(), 3);
        let (kept, dropped) = m.into_namespace("t");
        assert_eq!(dropped, 2);
        assert_eq!(
            kept,
            vec![Series {
                labels: a,
                value: 2.0,
                timestamp_ms: 2000
            }]
        );
    }
}
