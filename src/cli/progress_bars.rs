//! Draws the library's progress phases ([`segd::progress`]) as indicatif bars on stderr,
//! with rate and ETA. Installed only when stderr is a terminal, so logs shipped from a
//! pipe or a service manager never carry bar redraws.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use segd::progress::{PhaseSink, Reporter, Unit};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

struct Bars {
    bars: MultiProgress,
}

struct Bar(ProgressBar);

impl PhaseSink for Bar {
    fn set_position(&self, position: u64) {
        self.0.set_position(position);
    }
    fn inc(&self, delta: u64) {
        self.0.inc(delta);
    }
    fn finish(&self) {
        self.0.finish();
    }
}

impl Reporter for Bars {
    fn begin(&self, name: &str, total: Option<u64>, unit: Unit) -> Box<dyn PhaseSink> {
        if total == Some(0) {
            return Box::new(Bar(ProgressBar::hidden())); // nothing to show
        }
        let template = match (total, unit) {
            (Some(_), Unit::Items) => {
                "{msg:26} [{bar:32}] {human_pos:>11}/{human_len:11} {elapsed:>4} ETA {eta}"
            }
            (Some(_), Unit::Bytes) => {
                "{msg:26} [{bar:32}] {bytes:>10}/{total_bytes:10} {elapsed:>4} ETA {eta}"
            }
            (None, _) => "{msg:26} {spinner} {human_pos} {elapsed}",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => {
                let spinner = ProgressBar::new_spinner();
                spinner.enable_steady_tick(Duration::from_millis(120));
                spinner
            }
        };
        let bar = self
            .bars
            .add(bar.with_style(style).with_message(name.to_string()));
        Box::new(Bar(bar))
    }
}

/// Installs terminal bars when stderr is a terminal; returns whether it did.
pub fn install_if_terminal() -> bool {
    if !std::io::stderr().is_terminal() {
        return false;
    }
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    segd::progress::install(Some(Arc::new(Bars { bars })));
    true
}

/// Stops drawing bars for phases started from now on (a serving process's periodic
/// snapshots are logged, not drawn).
pub fn uninstall() {
    segd::progress::install(None);
}
