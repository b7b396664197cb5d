//! Service metrics and their Prometheus text rendering (`GET /metrics`).
//!
//! Label sets are bounded: routes are the route table's templates (or `unmatched`),
//! methods, statuses and error codes come from fixed sets, webhooks and segments are
//! capped in number. Operator figures (process, WAL, snapshots, recovery, per-segment
//! transitions, consumer lag) are rendered by [`operations`].
//!
//! The text is written by hand rather than with `prometheus-client`: most figures are
//! read from the engine at scrape time (no registry to keep in sync), the hot path is one
//! short lock and a few relaxed atomics per request, and the exposition format (0.0.4)
//! is small and fixed. A test parses the whole output line by line.

use crate::engine::Engine;
use crate::persist::wal::WalStatus;
pub use crate::telemetry::{Histogram, LATENCY_BUCKETS_US};

mod operations;
pub mod process;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `histogram` as a Prometheus histogram in seconds; `labels` is empty or
/// `key="value",...` (placed before `le`).
fn render_histogram(histogram: &Histogram, name: &str, labels: &str, out: &mut String) {
    let separator = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (bound, bucket) in LATENCY_BUCKETS_US.iter().zip(&histogram.buckets) {
        cumulative += bucket.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    let count = histogram.count.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {count}"
    );
    let braces = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            format!("{{{text}}}")
        }
    };
    let _ = writeln!(
        out,
        "{name}_sum{} {}",
        braces(labels),
        histogram.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

fn histogram_header(name: &str, help: &str, out: &mut String) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
}

/// Requests of one route template: counts by status, latency by method.
#[derive(Debug, Default)]
struct RouteFigures {
    statuses: BTreeMap<u16, u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// What the renderer needs besides the engine and the HTTP layer's own counters.
#[derive(Debug, Default)]
pub struct ScrapeInputs {
    pub webhooks: Vec<WebhookFigures>,
    /// The WAL's counters, when the service runs with persistence.
    pub wal: Option<WalStatus>,
}

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct Metrics {
    /// route template → statuses and per-method latency (keys allocated once per route).
    requests: Mutex<BTreeMap<String, RouteFigures>>,
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
    /// Open SSE streams' positions (stream number → last sequence sent), for their lag.
    sse_positions: Mutex<BTreeMap<u64, u64>>,
    next_sse_stream: AtomicU64,
}

/// Method label values (a fixed set, so a client cannot create labels).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Per-webhook figures for rendering.
#[derive(Debug, Clone)]
pub struct WebhookFigures {
    pub id: u64,
    pub lag: u64,
    pub consecutive_failures: u64,
}

impl Metrics {
    /// Counts a finished request by route template and status, and its latency by route
    /// and method (one short lock, no allocation after a route's first request).
    pub fn observe_request(
        &self,
        route: &str,
        method: &axum::http::Method,
        status: u16,
        elapsed_us: u64,
    ) {
        let method = method_label(method);
        let mut requests = self.requests.lock();
        let figures = match requests.get_mut(route) {
            Some(figures) => figures,
            None => requests.entry(route.to_string()).or_default(),
        };
        *figures.statuses.entry(status).or_default() += 1;
        figures
            .latency
            .entry(method)
            .or_default()
            .observe_us(elapsed_us);
    }

    /// Registers an SSE stream starting after `after`; returns its number.
    pub fn sse_opened(&self, after: u64) -> u64 {
        let stream = self.next_sse_stream.fetch_add(1, Ordering::Relaxed);
        self.sse_positions.lock().insert(stream, after);
        stream
    }

    pub fn sse_sent_through(&self, stream: u64, sequence: u64) {
        if let Some(position) = self.sse_positions.lock().get_mut(&stream) {
            *position = sequence;
        }
    }

    pub fn sse_closed(&self, stream: u64) {
        self.sse_positions.lock().remove(&stream);
    }

    pub fn count_rejection(&self, code: &'static str) {
        *self.rejected.lock().entry(code).or_default() += 1;
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self, engine: &Engine, inputs: &ScrapeInputs) -> String {
        let webhooks = &inputs.webhooks;
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
            "segd_apply_parallel_runs_total",
            "Runs of batch messages applied over several apply lanes at once.",
            counters.parallel_runs.load(Ordering::Relaxed),
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
        histogram_header(
            "segd_ingest_apply_seconds",
            "Time to apply one ingest request, including segment re-evaluation.",
            &mut out,
        );
        render_histogram(
            &self.ingest_apply,
            "segd_ingest_apply_seconds",
            "",
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
        {
            let requests = self.requests.lock();
            let _ = writeln!(out, "# HELP segd_http_requests_total HTTP requests by route and status.\n# TYPE segd_http_requests_total counter");
            for (route, figures) in requests.iter() {
                for (status, count) in &figures.statuses {
                    let _ = writeln!(
                        out,
                        "segd_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                    );
                }
            }
            histogram_header(
                "segd_http_request_duration_seconds",
                "Time from a request's arrival to its answer (streams: to the start of the answer), by route template and method.",
                &mut out,
            );
            for (route, figures) in requests.iter() {
                for (method, histogram) in &figures.latency {
                    render_histogram(
                        histogram,
                        "segd_http_request_duration_seconds",
                        &format!("route=\"{route}\",method=\"{method}\""),
                        &mut out,
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP segd_http_rejected_total Rejected requests by error code.\n# TYPE segd_http_rejected_total counter");
        for (code, count) in self.rejected.lock().iter() {
            let _ = writeln!(out, "segd_http_rejected_total{{code=\"{code}\"}} {count}");
        }
        self.render_operations(engine, inputs, &mut out);
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
        render_histogram(&histogram, "h", "", &mut out);
        assert!(out.contains("h_bucket{le=\"0.00001\"} 1"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.00005\"} 2"), "{out}");
        assert!(out.contains("h_bucket{le=\"10\"} 2"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("h_count 3"), "{out}");
    }
}
