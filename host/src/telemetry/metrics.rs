//! Counters in the Prometheus text format (`prometheus-client`). Names follow the
//! `portcullis_<subsystem>_<what>_total` pattern, labelled by route and plugin.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of a plugin failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginFailureLabels {
    pub route: String,
    pub plugin: String,
    /// `timeout`, `memory`, `trap`, `error`, `output_too_large`, `unavailable`, `busy`.
    pub kind: String,
    /// The failure policy applied: `closed`, `open`, `skip`.
    pub policy: String,
}

/// Labels of a counter a plugin adds to through `host.count`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginEventLabels {
    pub route: String,
    pub plugin: String,
    pub name: String,
}

/// Labels of a count by route and plugin.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub route: String,
    pub plugin: String,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub plugin_failures: Family<PluginFailureLabels, Counter>,
    pub plugin_events: Family<PluginEventLabels, Counter>,
    /// Instantiations and calls run on the plugin lane: a rising count names a plugin that
    /// computes for long and now runs at a lower priority (`plugin/cpu.rs`).
    pub plugin_lane_calls: Family<PluginLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let plugin_failures = Family::<PluginFailureLabels, Counter>::default();
        registry.register(
            "plugin_failures",
            "Plugin calls that failed (trap, deadline, memory, error), by failure policy",
            plugin_failures.clone(),
        );
        let plugin_events = Family::<PluginEventLabels, Counter>::default();
        registry.register(
            "plugin_events",
            "Counters added to by plugins through the host.count import",
            plugin_events.clone(),
        );
        let plugin_lane_calls = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_lane_calls",
            "Plugin instantiations and calls run at a lower priority, on threads of their own, because the plugin computed for long",
            plugin_lane_calls.clone(),
        );
        Self {
            registry,
            plugin_failures,
            plugin_events,
            plugin_lane_calls,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Calls of a route's plugin run on the lane; for tests and the admin API.
    pub fn plugin_lane_calls(&self, route: &str, plugin: &str) -> u64 {
        self.plugin_lane_calls
            .get_or_create(&PluginLabels {
                route: route.to_owned(),
                plugin: plugin.to_owned(),
            })
            .get()
    }

    /// How often a plugin failed in a given way; for tests and the admin API.
    pub fn plugin_failures(&self, route: &str, plugin: &str, kind: &str) -> u64 {
        ["closed", "open", "skip"]
            .iter()
            .map(|policy| {
                self.plugin_failures
                    .get_or_create(&PluginFailureLabels {
                        route: route.to_owned(),
                        plugin: plugin.to_owned(),
                        kind: kind.to_owned(),
                        policy: (*policy).to_owned(),
                    })
                    .get()
            })
            .sum()
    }
}
