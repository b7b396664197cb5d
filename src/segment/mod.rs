//! Segment rules: one AST, parsed from JSON or text, validated, compiled.
//!
//! Pipeline: text (`parser`) or JSON (serde) → [`ast::Rule`] → `compile` (validated
//! against the schema) → [`compile::Condition`] → `evaluate` (bitmap plan over a shard,
//! or one profile). `printer` turns any AST back into text; `reference` is a naive
//! evaluator used by tests to check the other two.
pub mod ast;
pub mod behavior;
pub mod compile;
pub mod evaluate;
pub mod parser;
pub mod plan_cache;
pub mod printer;
pub mod reference;
pub mod registry;

/// Explicit limits on rules; each has its own error.
pub mod limits {
    /// Deepest nesting of and/or/not/parentheses accepted (text and JSON).
    pub const MAX_RULE_DEPTH: usize = 32;
    /// Most values in one `in (...)` list.
    pub const MAX_LIST_LENGTH: usize = 10_000;
    /// Longest rule text, in bytes.
    pub const MAX_RULE_TEXT_BYTES: usize = 65_536;
    /// Most conditions (leaf nodes) in one rule.
    pub const MAX_RULE_CONDITIONS: usize = 1_000;
}
