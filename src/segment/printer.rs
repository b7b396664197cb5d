//! AST → canonical rule text (the syntax in `parser`'s module doc).
//!
//! Invariant (property-tested): for every AST whose floats are finite and which is within
//! the parser's limits (depth, list length, text size), `parse_rule(&print_rule(&rule))`
//! returns exactly `rule` — same grouping, same literal types, same float bits.
//!
//! Canonical choices: keywords lowercase; `and`/`or` of two or more rules written infix,
//! with parentheses only where precedence or grouping needs them; `and`/`or` of zero or
//! one rule written as a group `and(...)`; names back-quoted only when needed; `x = true`
//! spelled out; `did "e"` without a count means at least once and `did not "e"` exactly
//! zero times; floats in the shortest form that reads back to the same bits.

use crate::segment::ast::{
    AggregateFunction, CompareOp, CountOp, Literal, Performed, Recency, Rule, Span, TextOp,
    TimeUnit, Window,
};
use crate::segment::parser::is_bare_identifier;
use std::fmt::Write;

/// The canonical text of a rule.
pub fn print_rule(rule: &Rule) -> String {
    let mut out = String::new();
    write_rule(&mut out, rule, Position::Top);
    out
}

/// Where a rule is written, which decides whether it needs parentheses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The whole rule, or one rule of a group `and(...)`: anything goes.
    Top,
    /// A rule of an infix `or`: `and` binds tighter, so only `or` needs parentheses.
    OrOperand,
    /// A rule of an infix `and`, or after `not`: only a unary fits.
    Unary,
    /// After `where`: a simple condition, or parentheses, so that the filter cannot
    /// swallow the count or window that follows it.
    Filter,
}

fn is_infix_group(rule: &Rule) -> bool {
    matches!(rule, Rule::And { rules } | Rule::Or { rules } if rules.len() >= 2)
}

fn write_rule(out: &mut String, rule: &Rule, position: Position) {
    let parenthesize = match (rule, position) {
        (_, Position::Top) => false,
        (Rule::Or { rules }, Position::OrOperand) => rules.len() >= 2,
        (Rule::And { .. }, Position::OrOperand) => false,
        (_, Position::OrOperand) => false,
        (rule, Position::Unary) => is_infix_group(rule),
        (rule, Position::Filter) => {
            is_infix_group(rule)
                || matches!(
                    rule,
                    Rule::Not { .. } | Rule::EventCount { .. } | Rule::Aggregate { .. }
                )
        }
    };
    if parenthesize {
        out.push('(');
        write_rule(out, rule, Position::Top);
        out.push(')');
        return;
    }
    match rule {
        Rule::And { rules } | Rule::Or { rules } => {
            let keyword = if matches!(rule, Rule::And { .. }) {
                "and"
            } else {
                "or"
            };
            if rules.len() < 2 {
                // No infix form for zero or one rule: the group form keeps the node.
                out.push_str(keyword);
                out.push('(');
                if let Some(only) = rules.first() {
                    write_rule(out, only, Position::Top);
                }
                out.push(')');
                return;
            }
            let operand_position = if keyword == "or" {
                Position::OrOperand
            } else {
                Position::Unary
            };
            for (index, child) in rules.iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                    out.push_str(keyword);
                    out.push(' ');
                }
                write_rule(out, child, operand_position);
            }
        }
        Rule::Not { rule } => {
            out.push_str("not ");
            write_rule(out, rule, Position::Unary);
        }
        Rule::Compare {
            trait_name,
            op,
            value,
        } => {
            write_identifier(out, trait_name);
            let _ = write!(out, " {} ", compare_text(*op));
            write_literal(out, value);
        }
        Rule::Between {
            trait_name,
            low,
            high,
        } => {
            write_identifier(out, trait_name);
            out.push_str(" between ");
            write_literal(out, low);
            out.push_str(" and ");
            write_literal(out, high);
        }
        Rule::In {
            trait_name,
            values,
            negated,
        } => {
            write_identifier(out, trait_name);
            out.push_str(if *negated { " not in (" } else { " in (" });
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_literal(out, value);
            }
            out.push(')');
        }
        Rule::Text {
            trait_name,
            op,
            value,
        } => {
            write_identifier(out, trait_name);
            out.push_str(match op {
                TextOp::Contains => " contains ",
                TextOp::StartsWith => " starts_with ",
                TextOp::EndsWith => " ends_with ",
            });
            write_string(out, value);
        }
        Rule::Has { trait_name } => {
            out.push_str("has ");
            write_identifier(out, trait_name);
        }
        Rule::Recent {
            trait_name,
            recency,
            span,
        } => {
            write_identifier(out, trait_name);
            out.push(' ');
            write_recency(out, *recency, *span);
        }
        Rule::InSegment { segment } => {
            out.push_str("in segment ");
            write_string(out, segment);
        }
        Rule::RandomBucket { percent, salt } => {
            out.push_str("random bucket ");
            write_number(out, *percent);
            out.push('%');
            if let Some(salt) = salt {
                out.push_str(" salt ");
                write_string(out, salt);
            }
        }
        Rule::EventCount {
            event,
            filter,
            count_op,
            count,
            window,
        } => {
            let zero = *count_op == CountOp::Exactly && *count == 0;
            out.push_str(if zero { "did not " } else { "did " });
            write_string(out, event);
            write_filter(out, filter.as_deref());
            match (count_op, count) {
                _ if zero => {}
                (CountOp::AtLeast, 1) => {}
                (count_op, count) => {
                    out.push_str(match count_op {
                        CountOp::AtLeast => " at least ",
                        CountOp::AtMost => " at most ",
                        CountOp::Exactly => " exactly ",
                    });
                    let _ = write!(
                        out,
                        "{count} {}",
                        if *count == 1 { "time" } else { "times" }
                    );
                }
            }
            write_window(out, window);
        }
        Rule::Performed {
            event,
            which,
            recency,
            span,
        } => {
            out.push_str(match which {
                Performed::First => "first ",
                Performed::Last => "last ",
            });
            write_string(out, event);
            out.push(' ');
            write_recency(out, *recency, *span);
        }
        Rule::Aggregate {
            function,
            event,
            property,
            filter,
            window,
            op,
            value,
        } => {
            out.push_str(match function {
                AggregateFunction::Sum => "sum",
                AggregateFunction::Avg => "avg",
                AggregateFunction::Min => "min",
                AggregateFunction::Max => "max",
                AggregateFunction::CountDistinct => "count distinct",
            });
            out.push_str(" of ");
            write_string(out, event);
            out.push('.');
            write_identifier(out, property);
            write_filter(out, filter.as_deref());
            write_window(out, window);
            let _ = write!(out, " {} ", compare_text(*op));
            write_number(out, *value);
        }
    }
}

fn write_filter(out: &mut String, filter: Option<&Rule>) {
    if let Some(filter) = filter {
        out.push_str(" where ");
        write_rule(out, filter, Position::Filter);
    }
}

fn write_window(out: &mut String, window: &Window) {
    match window {
        Window::Lifetime => {}
        Window::Last { span } => {
            out.push_str(" in last ");
            write_span(out, *span);
        }
        Window::Between { from, to } => {
            out.push_str(" between ");
            write_string(out, from);
            out.push_str(" and ");
            write_string(out, to);
        }
    }
}

fn write_recency(out: &mut String, recency: Recency, span: Span) {
    let (before, after) = match recency {
        Recency::WithinLast => ("within last ", ""),
        Recency::WithinNext => ("within next ", ""),
        Recency::MoreThanAgo => ("more than ", " ago"),
        Recency::LessThanAgo => ("less than ", " ago"),
    };
    out.push_str(before);
    write_span(out, span);
    out.push_str(after);
}

fn write_span(out: &mut String, span: Span) {
    let unit = match span.unit {
        TimeUnit::Minutes => "minute",
        TimeUnit::Hours => "hour",
        TimeUnit::Days => "day",
    };
    let plural = if span.amount == 1 { "" } else { "s" };
    let _ = write!(out, "{} {unit}{plural}", span.amount);
}

fn compare_text(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::NotEq => "!=",
        CompareOp::Less => "<",
        CompareOp::LessOrEqual => "<=",
        CompareOp::Greater => ">",
        CompareOp::GreaterOrEqual => ">=",
    }
}

fn write_literal(out: &mut String, literal: &Literal) {
    match literal {
        Literal::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
        Literal::Integer(value) => {
            let _ = write!(out, "{value}");
        }
        Literal::Float(value) => write_float(out, *value),
        Literal::String(text) => write_string(out, text),
    }
}

/// A float that must read back as a float: Rust's `Debug` form is the shortest text that
/// parses to the same bits and always has a `.` or an exponent (`1.0`, `1e300`, `-0.0`).
/// Non-finite values print as `NaN`/`inf`, which the parser rejects.
fn write_float(out: &mut String, value: f64) {
    let _ = write!(out, "{value:?}");
}

/// Largest magnitude below which every integral f64 is an exact i64 (2^53).
const MAX_EXACT_INTEGER_FLOAT: f64 = 9_007_199_254_740_992.0;

/// A number where the AST only holds floats (percent, aggregate value): integral values
/// print as integers (`10`, read back as 10.0); `-0.0` and the rest as floats.
fn write_number(out: &mut String, value: f64) {
    let negative_zero = value == 0.0 && value.is_sign_negative();
    if value.fract() == 0.0 && value.abs() < MAX_EXACT_INTEGER_FLOAT && !negative_zero {
        let _ = write!(out, "{}", value as i64);
    } else {
        write_float(out, value);
    }
}

fn write_string(out: &mut String, text: &str) {
    write_quoted(out, text, '"');
}

fn write_identifier(out: &mut String, name: &str) {
    if is_bare_identifier(name) {
        out.push_str(name);
    } else {
        write_quoted(out, name, '`');
    }
}

fn write_quoted(out: &mut String, text: &str, quote: char) {
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}
