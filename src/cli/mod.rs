//! Terminal concerns of the `segd` command: log output and progress bars.

pub mod logging;
pub mod progress_bars;
