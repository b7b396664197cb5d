//! segd: an in-memory, real-time customer segmentation engine.
//!
//! See the README's Architecture section for how the modules fit together.
pub mod bulk;
pub mod changes;
pub mod clock;
pub mod demo;
pub mod engine;
pub mod ids;
pub mod import;
pub mod index;
pub mod ingest;
pub mod segment;
pub mod store;
