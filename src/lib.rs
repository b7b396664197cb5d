//! segd: an in-memory, real-time customer segmentation engine.
pub mod segment;
