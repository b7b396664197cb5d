//! Operator figures in `/metrics`: process resources, WAL and fsync, snapshots, what
//! recovery did at start, entries and exits per segment, and change-feed consumers' lag.

use super::{
    histogram_header, process as process_metrics, render_histogram, Metrics, ScrapeInputs,
};
use crate::engine::Engine;
use crate::telemetry;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

fn one(out: &mut String, kind: &str, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

impl Metrics {
    pub(super) fn render_operations(
        &self,
        engine: &Engine,
        inputs: &ScrapeInputs,
        out: &mut String,
    ) {
        process_metrics::render(&process_metrics::read(), out);

        if let Some(wal) = &inputs.wal {
            one(
                out,
                "counter",
                "segd_wal_bytes_written_total",
                "Bytes appended to the write-ahead log since start.",
                wal.bytes_written,
            );
            one(
                out,
                "counter",
                "segd_wal_records_written_total",
                "Records appended to the write-ahead log since start.",
                wal.records_written,
            );
            one(
                out,
                "counter",
                "segd_wal_syncs_total",
                "fdatasync calls on the write-ahead log since start.",
                wal.syncs,
            );
            one(
                out,
                "gauge",
                "segd_wal_durable_lsn",
                "Highest log sequence number known to be on stable storage.",
                wal.durable_lsn,
            );
            one(
                out,
                "gauge",
                "segd_wal_failed",
                "1 when the write-ahead log refused writes after an I/O failure (restart needed).",
                u8::from(wal.failure.is_some()),
            );
        }
        histogram_header(
            "segd_wal_fsync_duration_seconds",
            "Latency of write-ahead log fdatasync calls.",
            out,
        );
        render_histogram(
            &telemetry::WAL_FSYNC,
            "segd_wal_fsync_duration_seconds",
            "",
            out,
        );

        one(
            out,
            "counter",
            "segd_snapshots_total",
            "Snapshots written successfully since start.",
            telemetry::SNAPSHOTS_WRITTEN.load(Ordering::Relaxed),
        );
        one(
            out,
            "counter",
            "segd_snapshot_failures_total",
            "Snapshots that failed since start.",
            telemetry::SNAPSHOTS_FAILED.load(Ordering::Relaxed),
        );
        if let Some(last) = telemetry::last_snapshot() {
            one(
                out,
                "gauge",
                "segd_snapshot_last_success_timestamp_seconds",
                "Unix time the last successful snapshot finished (like Redis rdb_last_save_time).",
                last.finished_unix_ms as f64 / 1e3,
            );
            one(
                out,
                "gauge",
                "segd_snapshot_last_duration_seconds",
                "Duration of the last successful snapshot.",
                last.duration_s,
            );
            one(
                out,
                "gauge",
                "segd_snapshot_last_pause_seconds",
                "How long the last successful snapshot blocked writes.",
                last.pause_s,
            );
            one(
                out,
                "gauge",
                "segd_snapshot_last_size_bytes",
                "Size of the last successful snapshot.",
                last.bytes,
            );
        }
        if let Some(recovery) = telemetry::recovery() {
            one(
                out,
                "gauge",
                "segd_recovery_snapshot_bytes",
                "Size of the snapshot loaded at start.",
                recovery.snapshot_bytes,
            );
            one(
                out,
                "gauge",
                "segd_recovery_snapshot_load_seconds",
                "Time to load the snapshot at start.",
                recovery.snapshot_load_s,
            );
            one(
                out,
                "gauge",
                "segd_recovery_replayed_records",
                "Write-ahead log records replayed at start.",
                recovery.replayed_records,
            );
            one(
                out,
                "gauge",
                "segd_recovery_replayed_messages",
                "Ingest messages replayed at start.",
                recovery.replayed_messages,
            );
            one(
                out,
                "gauge",
                "segd_recovery_replay_seconds",
                "Time to replay the write-ahead log at start.",
                recovery.replay_s,
            );
            one(
                out,
                "gauge",
                "segd_recovery_replay_errors",
                "Write-ahead log records that failed to replay at start.",
                recovery.replay_errors,
            );
        }

        // Entries and exits per segment still defined (a deleted segment's series ends).
        let changes = engine.changes();
        let defined: std::collections::BTreeSet<u32> = engine
            .list_segments()
            .iter()
            .map(|segment| segment.id.0)
            .collect();
        let _ = writeln!(out, "# HELP segd_segment_transitions_total Membership changes per segment by kind (entered, exited).\n# TYPE segd_segment_transitions_total counter");
        for (segment, entered, exited) in changes.transitions_by_segment() {
            if defined.contains(&segment) {
                let _ = writeln!(out, "segd_segment_transitions_total{{segment_id=\"{segment}\",kind=\"entered\"}} {entered}");
                let _ = writeln!(out, "segd_segment_transitions_total{{segment_id=\"{segment}\",kind=\"exited\"}} {exited}");
            }
        }

        // Consumer lag: webhooks have `segd_webhook_lag{webhook_id}`; SSE streams are
        // anonymous and short-lived, so they are summarised.
        let head = changes.head();
        let lags: Vec<u64> = self
            .sse_positions
            .lock()
            .values()
            .map(|position| head.saturating_sub(*position))
            .collect();
        one(
            out,
            "gauge",
            "segd_sse_stream_lag_max",
            "Largest number of changes an open SSE stream has not yet been sent.",
            lags.iter().max().copied().unwrap_or(0),
        );
    }
}
