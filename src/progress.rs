//! Progress of long start-up and batch phases (demo load, import, snapshot load and write,
//! WAL replay), reported to whoever installed a [`Reporter`] — the `segd` command draws
//! terminal progress bars; an embedding that installs nothing pays one lock read per
//! phase (never per item).
//!
//! Library code opens a [`Phase`] with its total (when known) and advances it in batches;
//! the phase finishes when dropped.

use parking_lot::RwLock;
use std::sync::Arc;

/// What a phase counts, for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Items,
    Bytes,
}

/// One running phase as the reporter sees it.
pub trait PhaseSink: Send + Sync {
    fn set_position(&self, position: u64);
    fn inc(&self, delta: u64);
    fn finish(&self);
}

/// Creates a sink per phase (e.g. a progress bar).
pub trait Reporter: Send + Sync {
    fn begin(&self, name: &str, total: Option<u64>, unit: Unit) -> Box<dyn PhaseSink>;
}

static REPORTER: RwLock<Option<Arc<dyn Reporter>>> = RwLock::new(None);

/// Installs `reporter` for phases started from now on; returns the previous one.
pub fn install(reporter: Option<Arc<dyn Reporter>>) -> Option<Arc<dyn Reporter>> {
    std::mem::replace(&mut *REPORTER.write(), reporter)
}

/// A phase in progress; finished when dropped.
pub struct Phase {
    sink: Option<Box<dyn PhaseSink>>,
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Phase")
            .field("reported", &self.sink.is_some())
            .finish()
    }
}

/// Starts a phase named `name` with `total` units (None: unknown, a spinner).
pub fn phase(name: &str, total: Option<u64>, unit: Unit) -> Phase {
    let reporter = REPORTER.read().clone();
    Phase {
        sink: reporter.map(|reporter| reporter.begin(name, total, unit)),
    }
}

impl Phase {
    pub fn inc(&self, delta: u64) {
        if let Some(sink) = &self.sink {
            sink.inc(delta);
        }
    }

    pub fn set_position(&self, position: u64) {
        if let Some(sink) = &self.sink {
            sink.set_position(position);
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(sink) = &self.sink {
            sink.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    struct RecordedPhase(Arc<Mutex<Vec<String>>>, String);

    impl PhaseSink for RecordedPhase {
        fn set_position(&self, position: u64) {
            self.0.lock().push(format!("{} at {position}", self.1));
        }
        fn inc(&self, delta: u64) {
            self.0.lock().push(format!("{} +{delta}", self.1));
        }
        fn finish(&self) {
            self.0.lock().push(format!("{} done", self.1));
        }
    }

    impl Reporter for Recorder {
        fn begin(&self, name: &str, total: Option<u64>, _unit: Unit) -> Box<dyn PhaseSink> {
            self.0.lock().push(format!("{name} of {total:?}"));
            Box::new(RecordedPhase(self.0.clone(), name.to_string()))
        }
    }

    #[test]
    fn phases_reach_the_installed_reporter_and_finish_on_drop() {
        // Without a reporter a phase is inert.
        phase("before", Some(1), Unit::Items).inc(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let previous = install(Some(Arc::new(Recorder(log.clone()))));
        {
            let running = phase("unit-test", Some(10), Unit::Items);
            running.inc(4);
            running.set_position(10);
        }
        install(previous);
        phase("after", None, Unit::Bytes).inc(1);
        // Other tests running at the same time may start phases too: keep only ours.
        let ours: Vec<String> = log
            .lock()
            .iter()
            .filter(|line| line.starts_with("unit-test") || line.starts_with("after"))
            .cloned()
            .collect();
        assert_eq!(
            ours,
            vec![
                "unit-test of Some(10)",
                "unit-test +4",
                "unit-test at 10",
                "unit-test done"
            ]
        );
    }
}
