//! Where in a rule's text an error is, so editors can underline it.
//!
//! Syntax errors carry the parser's own position (byte offset and offending token).
//! Type errors are found after parsing, on the AST, which keeps no positions: the span
//! is the first place in the text where that trait is followed by that operator (for
//! an unknown segment, its quoted name), found by scanning the text outside strings.
//! The span is sent as `span: {start, end}` in characters (Unicode scalar values), with
//! `line` and `column` (1-based) of its start.

use crate::engine::EngineError;
use crate::http::error::ApiError;
use crate::segment::compile::RuleError;

/// A byte range of the rule text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSpan {
    pub start: usize,
    pub end: usize,
}

/// The span of an error in `text`, when one can be named.
pub fn error_span(text: &str, error: &EngineError) -> Option<ByteSpan> {
    match error {
        EngineError::Parse(parse) => {
            let start = parse.offset().min(text.len());
            let mut end = (start + parse.token().len()).min(text.len());
            if end == start {
                // At the end of the text or an empty token: mark one character (or the
                // last one, at the end), so there is something to underline.
                end = text[start..]
                    .chars()
                    .next()
                    .map_or(start, |c| start + c.len_utf8());
                if end == start {
                    let back = text[..start].chars().next_back()?;
                    return Some(ByteSpan {
                        start: start - back.len_utf8(),
                        end: start,
                    });
                }
            }
            Some(ByteSpan { start, end })
        }
        EngineError::Rule(RuleError::TypeMismatch {
            trait_name,
            operator,
            ..
        })
        | EngineError::Rule(RuleError::UnsupportedOperator {
            trait_name,
            operator,
            ..
        }) => find_condition(text, trait_name, operator)
            .or_else(|| find_outside_strings(text, trait_name)),
        EngineError::Rule(RuleError::UnknownSegment(name))
        | EngineError::Rule(RuleError::SelfReference(name)) => {
            let quoted = format!("\"{name}\"");
            text.find(&quoted).map(|start| ByteSpan {
                start,
                end: start + quoted.len(),
            })
        }
        _ => None,
    }
}

/// Byte offsets of text outside double-quoted strings, with the character there.
fn code_positions(text: &str) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
            continue;
        }
        if character == '"' {
            in_string = true;
            continue;
        }
        positions.push(index);
    }
    positions
}

fn is_name_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_' || character == '.'
}

/// Occurrences of `name` as a whole identifier (bare or back-quoted) outside strings.
fn name_occurrences(text: &str, name: &str) -> Vec<ByteSpan> {
    let positions = code_positions(text);
    let quoted = format!("`{name}`");
    let mut found = Vec::new();
    for &start in &positions {
        for candidate in [name, quoted.as_str()] {
            if candidate.is_empty() || !text[start..].starts_with(candidate) {
                continue;
            }
            let end = start + candidate.len();
            let before_ok = text[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !is_name_char(c));
            let after_ok = text[end..].chars().next().is_none_or(|c| !is_name_char(c));
            if before_ok && after_ok {
                found.push(ByteSpan { start, end });
            }
        }
    }
    found
}

fn find_outside_strings(text: &str, name: &str) -> Option<ByteSpan> {
    name_occurrences(text, name).into_iter().next()
}

/// `trait op` with the operator written as in the error (`contains`, `>=`, `between`…).
fn find_condition(text: &str, trait_name: &str, operator: &str) -> Option<ByteSpan> {
    let operator_words: Vec<&str> = operator.split_whitespace().collect();
    for name in name_occurrences(text, trait_name) {
        let mut at = name.end;
        let mut matched = true;
        for word in &operator_words {
            let rest = &text[at..];
            let trimmed = rest.trim_start();
            at += rest.len() - trimmed.len();
            if trimmed.len() >= word.len()
                && trimmed.is_char_boundary(word.len())
                && trimmed[..word.len()].eq_ignore_ascii_case(word)
            {
                at += word.len();
            } else {
                matched = false;
                break;
            }
        }
        if matched {
            return Some(ByteSpan {
                start: name.start,
                end: at,
            });
        }
    }
    None
}

/// The API error for a rule error, with `span`, `line` and `column` when the rule was
/// text and the error can be placed.
pub fn rule_error(text: Option<&str>, error: EngineError) -> ApiError {
    let span = text.and_then(|text| error_span(text, &error).map(|span| (text, span)));
    let mut api: ApiError = error.into();
    if let Some((text, span)) = span {
        let start = text[..span.start].chars().count();
        let end = start + text[span.start..span.end].chars().count();
        let line = text[..span.start].matches('\n').count() + 1;
        let line_start = text[..span.start].rfind('\n').map_or(0, |at| at + 1);
        let column = text[line_start..span.start].chars().count() + 1;
        api = api
            .with("span", serde_json::json!({ "start": start, "end": end }))
            .with("line", line)
            .with("column", column);
    }
    api
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::parser::parse_rule;
    use crate::store::value::TraitType;

    #[test]
    fn syntax_errors_use_the_parser_position() {
        let text = "age > 3 and and";
        let error = EngineError::Parse(parse_rule(text).unwrap_err());
        let span = error_span(text, &error).unwrap();
        assert_eq!(&text[span.start..span.end], "and");
        assert_eq!(span.start, 12);
        // At the end of the text the last character is marked.
        let text = "age >";
        let error = EngineError::Parse(parse_rule(text).unwrap_err());
        let span = error_span(text, &error).unwrap();
        assert_eq!(&text[span.start..span.end], ">");
    }

    #[test]
    fn type_errors_are_placed_on_their_condition() {
        let text = "name = \"age contains\" and age contains \"x\"";
        let error = EngineError::Rule(RuleError::UnsupportedOperator {
            trait_name: "age".into(),
            trait_type: TraitType::Integer,
            operator: "contains".into(),
            hint: "",
        });
        let span = error_span(text, &error).unwrap();
        assert_eq!(&text[span.start..span.end], "age contains");
        let text = "in segment \"nope\"";
        let error = EngineError::Rule(RuleError::UnknownSegment("nope".into()));
        let span = error_span(text, &error).unwrap();
        assert_eq!(&text[span.start..span.end], "\"nope\"");
    }

    #[test]
    fn spans_are_sent_in_characters() {
        let text = "city = \"Zürich\" and and";
        let error = EngineError::Parse(parse_rule(text).unwrap_err());
        let api = rule_error(Some(text), error);
        let span = &api.details["span"];
        assert_eq!(span["start"], 20);
        assert_eq!(span["end"], 23);
        assert_eq!(api.details["column"], 21);
    }
}
