//! Metrics of the rules sync. Labels are bounded by config: the tenant
//! (tenants sharing one ruler joined with `+`), the ruler (`mimir` or
//! `loki`) and the action.

use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct RulesSyncMetrics {
    /// `lgtm_proxy_rules_sync_total{tenant,ruler,result}`: passes per ruler.
    pub syncs: IntCounterVec,
    /// `lgtm_proxy_rules_groups{tenant,ruler}`: groups the proxy manages there.
    pub groups: IntGaugeVec,
    pub last_success: GaugeVec,
    /// `lgtm_proxy_rules_sync_changes_total{tenant,ruler,action}`.
    pub changes: IntCounterVec,
    pub invalid_files: IntGauge,
}

impl RulesSyncMetrics {
    pub fn register(registry: &Registry) -> Self {
        let syncs = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_rules_sync_total",
                "Rules sync passes per tenant ruler: success (ruler read and every change applied) or failure.",
            ),
            &["tenant", "ruler", "result"],
        )
        .expect("static metric definition");
        let groups = IntGaugeVec::new(
            Opts::new(
                "lgtm_proxy_rules_groups",
                "Rule groups from valid rule files that the proxy keeps on the tenant's ruler.",
            ),
            &["tenant", "ruler"],
        )
        .expect("static metric definition");
        let last_success = GaugeVec::new(
            Opts::new(
                "lgtm_proxy_rules_sync_last_success_timestamp_seconds",
                "Unix time of the tenant ruler's last successful sync pass.",
            ),
            &["tenant", "ruler"],
        )
        .expect("static metric definition");
        let changes = IntCounterVec::new(
            Opts::new(
                "lgtm_proxy_rules_sync_changes_total",
                "Rule groups created, updated or deleted on a tenant's ruler.",
            ),
            &["tenant", "ruler", "action"],
        )
        .expect("static metric definition");
        let invalid_files = IntGauge::new(
            "lgtm_proxy_rules_invalid_files",
            "Rule files (or documents in them) skipped as invalid in the last config load.",
        )
        .expect("static metric definition");
        for c in [
            Box::new(syncs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(groups.clone()),
            Box::new(last_success.clone()),
            Box::new(changes.clone()),
            Box::new(invalid_files.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        RulesSyncMetrics {
            syncs,
            groups,
            last_success,
            changes,
            invalid_files,
        }
    }
}
