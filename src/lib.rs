//! segd: an in-memory, real-time customer segmentation engine.
//!
//! See the README's Architecture section for how the modules fit together.
pub mod bulk;
pub mod changes;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod engine;
pub mod events;
pub mod explain;
pub mod http;
pub mod ids;
pub mod import;
pub mod index;
pub mod ingest;
pub mod mmap;
pub mod persist;
pub mod progress;
pub mod segment;
pub mod store;
pub mod telemetry;
pub mod write;
