//! Bitmap indexes beyond the per-value bitmaps kept by string, boolean and list columns.
pub mod bsi;
pub mod sorted;
