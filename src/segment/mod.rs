//! Segment rules: one AST, parsed from JSON or text, validated, compiled.
pub mod ast;

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
