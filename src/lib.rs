//! segd: an in-memory, real-time customer segmentation engine.
pub mod changes;
pub mod demo;
pub mod segment;
