//! Terminal concerns of the `segd` command: log output and progress bars.

pub mod cluster;
pub mod logging;
pub mod progress_bars;
