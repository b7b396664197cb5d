// TEMPORARY STUB (not committed): replaced by the parser branch.
use crate::segment::ast::Rule;
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parse error")]
pub struct ParseError;
impl ParseError {
    pub fn code(&self) -> &'static str {
        "rule_syntax"
    }
}
pub fn parse_rule(_text: &str) -> Result<Rule, ParseError> {
    Err(ParseError)
}
pub fn normalize(rule: Rule) -> Rule {
    rule
}
