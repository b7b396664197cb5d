//! Service metrics and their Prometheus text rendering (`GET /metrics`).
//!
//! Label sets are bounded: routes are the route table's templates (or `unmatched`),
//! statuses and error codes come from a fixed set, webhooks are capped in number.

use crate::engine::Engine;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (microseconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 10_000_000,
];

/// A fixed-bucket histogram with atomic counters.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe_us(&self, value_us: u64) {
        if let Some(index) = LATENCY_BUCKETS_US
            .iter()
            .position(|bound| value_us <= *bound)
        {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(value_us, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct Metrics {
    /// route template → status → requests (keys allocated once per route and status).
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    /// error code → rejected requests.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Time to apply an ingest request (validation, identity, re-evaluation, change log).
    pub ingest_apply: Histogram,
    pub ingest_requests: AtomicU64,
    pub shed_requests: AtomicU64,
    pub sse_streams_active: AtomicU64,
    pub webhook_deliveries: AtomicU64,
    pub webhook_failures: AtomicU64,
    pub webhook_fell_behind: AtomicU64,
}

/// Per-webhook figures for rendering.
#[derive(Debug, Clone)]
pub struct WebhookFigures {
    pub id: u64,
    pub lag: u64,
    pub consecutive_failures: u64,
}

impl Metrics {
    pub fn count_request(&self, route: &str, status: u16) {
        let mut requests = self.requests.lock();
        match requests.get_mut(route) {
            Some(statuses) => *statuses.entry(status).or_default() += 1,
            None => {
                requests.insert(route.to_string(), BTreeMap::from([(status, 1)]));
            }
        }
    }

    pub fn count_rejection(&self, code: &'static str) {
        *self.rejected.lock().entry(code).or_default() += 1;
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self, engine: &Engine, webhooks: &[WebhookFigures]) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let counters = &engine.counters;
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "segd_ingest_messages_applied_total",
            "Messages applied (identify, track, page, screen, group, alias).",
            counters.messages_applied.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "segd_ingest_messages_duplicate_total",
            "Messages skipped because their messageId was seen within the de-duplication window.",
            counters.messages_duplicate.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "segd_ingest_messages_suppressed_total",
            "Messages dropped because they name an erased profile.",
            counters.messages_suppressed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "segd_ingest_requests_total",
            "Ingest requests accepted.",
            self.ingest_requests.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "segd_membership_changes_total",
            "Membership changes caused by ingest.",
            counters.membership_changes.load(Ordering::Relaxed),
        );
        self.ingest_apply.render(
            "segd_ingest_apply_seconds",
            "Time to apply one ingest request, including segment re-evaluation.",
            &mut out,
        );
        gauge(
            &mut out,
            "segd_profiles",
            "Profiles held.",
            engine.profile_count(),
        );
        let segments = engine.list_segments();
        gauge(
            &mut out,
            "segd_segments",
            "Segments defined.",
            segments.len() as u64,
        );
        let _ = writeln!(
            out,
            "# HELP segd_segment_members Members per segment.\n# TYPE segd_segment_members gauge"
        );
        for segment in &segments {
            let _ = writeln!(
                out,
                "segd_segment_members{{segment_id=\"{}\"}} {}",
                segment.id, segment.count
            );
        }
        let changes = engine.changes();
        gauge(
            &mut out,
            "segd_change_log_head",
            "Sequence number of the newest membership change.",
            changes.head(),
        );
        gauge(
            &mut out,
            "segd_change_log_retained",
            "Membership changes retained in the change log.",
            changes.len() as u64,
        );
        gauge(
            &mut out,
            "segd_sse_streams_active",
            "Open Server-Sent Events change streams.",
            self.sse_streams_active.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "segd_webhook_deliveries_total",
            "Webhook deliveries answered with 2xx.",
            self.webhook_deliveries.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "segd_webhook_failures_total",
            "Webhook delivery attempts that failed (error, timeout or non-2xx).",
            self.webhook_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "segd_webhook_fell_behind_total",
            "Times a webhook's undelivered changes were dropped by change-log retention.",
            self.webhook_fell_behind.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP segd_webhook_lag Changes a webhook has not yet delivered (change-log head minus its position).\n# TYPE segd_webhook_lag gauge");
        for webhook in webhooks {
            let _ = writeln!(
                out,
                "segd_webhook_lag{{webhook_id=\"{}\"}} {}",
                webhook.id, webhook.lag
            );
        }
        let _ = writeln!(out, "# HELP segd_webhook_consecutive_failures Failed attempts since the last successful delivery.\n# TYPE segd_webhook_consecutive_failures gauge");
        for webhook in webhooks {
            let _ = writeln!(
                out,
                "segd_webhook_consecutive_failures{{webhook_id=\"{}\"}} {}",
                webhook.id, webhook.consecutive_failures
            );
        }
        counter(
            &mut out,
            "segd_http_shed_total",
            "Requests refused with 503 because the concurrency limit was reached.",
            self.shed_requests.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP segd_http_requests_total HTTP requests by route and status.\n# TYPE segd_http_requests_total counter");
        for (route, statuses) in self.requests.lock().iter() {
            for (status, count) in statuses {
                let _ = writeln!(
                    out,
                    "segd_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        let _ = writeln!(out, "# HELP segd_http_rejected_total Rejected requests by error code.\n# TYPE segd_http_rejected_total counter");
        for (code, count) in self.rejected.lock().iter() {
            let _ = writeln!(out, "segd_http_rejected_total{{code=\"{code}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let histogram = Histogram::default();
        histogram.observe_us(5);
        histogram.observe_us(30);
        histogram.observe_us(20_000_000);
        let mut out = String::new();
        histogram.render("h", "help", &mut out);
        assert!(out.contains("h_bucket{le=\"0.00001\"} 1"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.00005\"} 2"), "{out}");
        assert!(out.contains("h_bucket{le=\"10\"} 2"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("h_count 3"), "{out}");
    }
}
