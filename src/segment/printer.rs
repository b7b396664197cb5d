// TEMPORARY STUB (not committed)
use crate::segment::ast::Rule;
pub fn print_rule(rule: &Rule) -> String {
    format!("{rule:?}")
}
