//! Segment rules: one AST, parsed from JSON or text, validated, compiled.
pub mod ast;
