//! The rule text syntax: parser, printer and normal form, through the public API.

use proptest::prelude::*;
use segd::segment::ast::{
    AggregateFunction, CompareOp, CountOp, Literal, Performed, Recency, Rule, Span, TextOp,
    TimeUnit, Window,
};
use segd::segment::limits;
use segd::segment::parser::{normalize, parse_rule, ParseError, KEYWORDS};
use segd::segment::printer::print_rule;

// ---------------------------------------------------------------------------------------
// Helpers building expected ASTs

fn compare(name: &str, op: CompareOp, value: Literal) -> Rule {
    Rule::Compare {
        trait_name: name.into(),
        op,
        value,
    }
}

fn text(value: &str) -> Literal {
    Literal::String(value.into())
}

fn and(rules: Vec<Rule>) -> Rule {
    Rule::And { rules }
}

fn or(rules: Vec<Rule>) -> Rule {
    Rule::Or { rules }
}

fn not(rule: Rule) -> Rule {
    Rule::Not {
        rule: Box::new(rule),
    }
}

fn days(amount: u32) -> Span {
    Span {
        amount,
        unit: TimeUnit::Days,
    }
}

fn parse(text: &str) -> Rule {
    match parse_rule(text) {
        Ok(rule) => rule,
        Err(error) => panic!("{text:?} did not parse: {error}"),
    }
}

fn parse_error(text: &str) -> ParseError {
    match parse_rule(text) {
        Ok(rule) => panic!("{text:?} parsed, to {rule:?}"),
        Err(error) => error,
    }
}

/// Asserts code, line, column and that the message contains `needle`.
fn assert_error(text: &str, code: &str, line: usize, column: usize, needle: &str) -> ParseError {
    let error = parse_error(text);
    assert_eq!(error.code(), code, "{text:?}: {error}");
    assert_eq!(
        (error.line(), error.column()),
        (line, column),
        "{text:?}: {error}"
    );
    assert!(
        error.message().contains(needle),
        "{text:?}: message {:?} lacks {needle:?}",
        error.message()
    );
    assert_eq!(
        error.to_string(),
        format!("line {line}, column {column}: {}", error.message())
    );
    error
}

fn assert_round_trip(rule: &Rule) {
    let printed = print_rule(rule);
    match parse_rule(&printed) {
        Ok(parsed) => assert_eq!(&parsed, rule, "printed as {printed}"),
        Err(error) => panic!("printed {printed:?} does not parse: {error}"),
    }
}

// ---------------------------------------------------------------------------------------
// The README / docs examples

#[test]
fn readme_examples_parse_to_expected_asts() {
    let examples: Vec<(&str, Rule)> = vec![
        (
            r#"country = "DE" and age between 25 and 40 and status = "subscribed" and ltv > 300 and push_enabled"#,
            and(vec![
                compare("country", CompareOp::Eq, text("DE")),
                Rule::Between {
                    trait_name: "age".into(),
                    low: Literal::Integer(25),
                    high: Literal::Integer(40),
                },
                compare("status", CompareOp::Eq, text("subscribed")),
                compare("ltv", CompareOp::Greater, Literal::Integer(300)),
                compare("push_enabled", CompareOp::Eq, Literal::Bool(true)),
            ]),
        ),
        (
            r#"email ends_with "@example.com" or tags contains "vip""#,
            or(vec![
                Rule::Text {
                    trait_name: "email".into(),
                    op: TextOp::EndsWith,
                    value: "@example.com".into(),
                },
                Rule::Text {
                    trait_name: "tags".into(),
                    op: TextOp::Contains,
                    value: "vip".into(),
                },
            ]),
        ),
        (
            "not has phone",
            not(Rule::Has {
                trait_name: "phone".into(),
            }),
        ),
        (
            r#"status in ("subscribed", "unconfirmed") and city != "Berlin""#,
            and(vec![
                Rule::In {
                    trait_name: "status".into(),
                    values: vec![text("subscribed"), text("unconfirmed")],
                    negated: false,
                },
                compare("city", CompareOp::NotEq, text("Berlin")),
            ]),
        ),
        (
            "signup_at within last 30 days",
            Rule::Recent {
                trait_name: "signup_at".into(),
                recency: Recency::WithinLast,
                span: days(30),
            },
        ),
        (
            r#"did "order_completed" where amount > 100 at least 3 times in last 30 days"#,
            Rule::EventCount {
                event: "order_completed".into(),
                filter: Some(Box::new(compare(
                    "amount",
                    CompareOp::Greater,
                    Literal::Integer(100),
                ))),
                count_op: CountOp::AtLeast,
                count: 3,
                window: Window::Last { span: days(30) },
            },
        ),
        (
            r#"did not "app_opened" in last 14 days"#,
            Rule::EventCount {
                event: "app_opened".into(),
                filter: None,
                count_op: CountOp::Exactly,
                count: 0,
                window: Window::Last { span: days(14) },
            },
        ),
        (
            r#"last "email_opened" more than 60 days ago"#,
            Rule::Performed {
                event: "email_opened".into(),
                which: Performed::Last,
                recency: Recency::MoreThanAgo,
                span: days(60),
            },
        ),
        (
            r#"sum of "order_completed".amount in last 90 days >= 500"#,
            Rule::Aggregate {
                function: AggregateFunction::Sum,
                event: "order_completed".into(),
                property: "amount".into(),
                filter: None,
                window: Window::Last { span: days(90) },
                op: CompareOp::GreaterOrEqual,
                value: 500.0,
            },
        ),
        (
            r#"in segment "vip" and not in segment "churned""#,
            and(vec![
                Rule::InSegment {
                    segment: "vip".into(),
                },
                not(Rule::InSegment {
                    segment: "churned".into(),
                }),
            ]),
        ),
        (
            "random bucket 10%",
            Rule::RandomBucket {
                percent: 10.0,
                salt: None,
            },
        ),
    ];
    let readme = include_str!("../README.md");
    for (source, expected) in &examples {
        assert!(
            readme.contains(source),
            "README no longer shows the example {source}"
        );
        assert_eq!(&parse(source), expected, "{source}");
        assert_round_trip(expected);
    }
}

#[test]
fn readme_more_examples_parse_to_expected_asts() {
    // The second example block of the README "Rule language" section.
    let examples: Vec<(&str, Rule)> = vec![
        (
            r#"(plan = "pro" or plan = "team") and not (country in ("US", "CA") or has opted_out)"#,
            and(vec![
                or(vec![
                    compare("plan", CompareOp::Eq, text("pro")),
                    compare("plan", CompareOp::Eq, text("team")),
                ]),
                not(or(vec![
                    Rule::In {
                        trait_name: "country".into(),
                        values: vec![text("US"), text("CA")],
                        negated: false,
                    },
                    Rule::Has {
                        trait_name: "opted_out".into(),
                    },
                ])),
            ]),
        ),
        (
            r#"`first name` starts_with "Jo" and `last` = -1.5e3"#,
            and(vec![
                Rule::Text {
                    trait_name: "first name".into(),
                    op: TextOp::StartsWith,
                    value: "Jo".into(),
                },
                compare("last", CompareOp::Eq, Literal::Float(-1500.0)),
            ]),
        ),
        (
            r#"subscriptions.newsletter.email.status not in ("unsubscribed", "complainer")"#,
            Rule::In {
                trait_name: "subscriptions.newsletter.email.status".into(),
                values: vec![text("unsubscribed"), text("complainer")],
                negated: true,
            },
        ),
        (
            r#"renewal_at within next 7 days and trial_ends_at less than 12 hours ago"#,
            and(vec![
                Rule::Recent {
                    trait_name: "renewal_at".into(),
                    recency: Recency::WithinNext,
                    span: days(7),
                },
                Rule::Recent {
                    trait_name: "trial_ends_at".into(),
                    recency: Recency::LessThanAgo,
                    span: Span {
                        amount: 12,
                        unit: TimeUnit::Hours,
                    },
                },
            ]),
        ),
        (
            r#"did "email_clicked" where (campaign starts_with "spring" and not has test) exactly 1 time between "2024-03-01" and "2024-06-01""#,
            Rule::EventCount {
                event: "email_clicked".into(),
                filter: Some(Box::new(and(vec![
                    Rule::Text {
                        trait_name: "campaign".into(),
                        op: TextOp::StartsWith,
                        value: "spring".into(),
                    },
                    not(Rule::Has {
                        trait_name: "test".into(),
                    }),
                ]))),
                count_op: CountOp::Exactly,
                count: 1,
                window: Window::Between {
                    from: "2024-03-01".into(),
                    to: "2024-06-01".into(),
                },
            },
        ),
        (
            r#"first "app_opened" within last 7 days"#,
            Rule::Performed {
                event: "app_opened".into(),
                which: Performed::First,
                recency: Recency::WithinLast,
                span: days(7),
            },
        ),
        (
            r#"count distinct of "page".url where utm_source = "newsletter" in last 30 days >= 5"#,
            Rule::Aggregate {
                function: AggregateFunction::CountDistinct,
                event: "page".into(),
                property: "url".into(),
                filter: Some(Box::new(compare(
                    "utm_source",
                    CompareOp::Eq,
                    text("newsletter"),
                ))),
                window: Window::Last { span: days(30) },
                op: CompareOp::GreaterOrEqual,
                value: 5.0,
            },
        ),
        (
            r#"random bucket 12.5% salt "spring_test""#,
            Rule::RandomBucket {
                percent: 12.5,
                salt: Some("spring_test".into()),
            },
        ),
    ];
    let readme = include_str!("../README.md");
    for (source, expected) in &examples {
        assert!(
            readme.contains(source),
            "README no longer shows the example {source}"
        );
        assert_eq!(&parse(source), expected, "{source}");
        assert_round_trip(expected);
    }
}

#[test]
fn demo_segments_parse_and_round_trip() {
    for (name, source, _) in segd::demo::demo_segments() {
        let rule = parse(source);
        let printed = print_rule(&rule);
        assert_eq!(parse(&printed), rule, "{name}: printed as {printed}");
        assert_eq!(normalize(rule.clone()), rule, "{name} is already normal");
    }
}

#[test]
fn canonical_text_of_the_demo_rules() {
    let printed: Vec<String> = [
        r#"COUNTRY = "DE" AND Age BETWEEN 25 And 40"#,
        r#"did not "app_opened"   in last 14 days"#,
        r#"did "order_completed" in last 30 days at least 3 times where amount > 100"#,
        "random bucket 10%",
        "push_enabled",
    ]
    .iter()
    .map(|source| print_rule(&parse(source)))
    .collect();
    assert_eq!(
        printed,
        [
            r#"COUNTRY = "DE" and Age between 25 and 40"#,
            r#"did not "app_opened" in last 14 days"#,
            r#"did "order_completed" where amount > 100 at least 3 times in last 30 days"#,
            "random bucket 10%",
            "push_enabled = true",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Structure: precedence, grouping, degenerate groups

#[test]
fn precedence_not_over_and_over_or() {
    assert_eq!(
        parse("a or b and not c"),
        or(vec![
            compare("a", CompareOp::Eq, Literal::Bool(true)),
            and(vec![
                compare("b", CompareOp::Eq, Literal::Bool(true)),
                not(compare("c", CompareOp::Eq, Literal::Bool(true))),
            ]),
        ])
    );
}

#[test]
fn parentheses_keep_their_grouping() {
    let flag = |name: &str| compare(name, CompareOp::Eq, Literal::Bool(true));
    assert_eq!(
        parse("(a and b) and c"),
        and(vec![and(vec![flag("a"), flag("b")]), flag("c")])
    );
    assert_eq!(
        parse("a and b and c"),
        and(vec![flag("a"), flag("b"), flag("c")])
    );
    assert_eq!(parse("((a))"), flag("a"));
    let nested = and(vec![and(vec![flag("a"), flag("b")]), flag("c")]);
    assert_eq!(print_rule(&nested), "(a = true and b = true) and c = true");
    assert_round_trip(&nested);
}

#[test]
fn degenerate_groups_have_a_text_form() {
    let flag = compare("a", CompareOp::Eq, Literal::Bool(true));
    for rule in [
        and(vec![]),
        or(vec![]),
        and(vec![flag.clone()]),
        or(vec![flag.clone()]),
        not(and(vec![or(vec![])])),
    ] {
        assert_round_trip(&rule);
    }
    assert_eq!(print_rule(&and(vec![])), "and()");
    assert_eq!(print_rule(&or(vec![flag.clone()])), "or(a = true)");
    assert_eq!(
        parse("and(a, b, or(c))"),
        and(vec![
            flag.clone(),
            compare("b", CompareOp::Eq, Literal::Bool(true)),
            or(vec![compare("c", CompareOp::Eq, Literal::Bool(true))]),
        ])
    );
}

#[test]
fn normalize_unwraps_single_rule_groups_only() {
    let flag = |name: &str| compare(name, CompareOp::Eq, Literal::Bool(true));
    let rule = and(vec![
        or(vec![not(not(and(vec![flag("a")])))]),
        and(vec![]),
        Rule::EventCount {
            event: "e".into(),
            filter: Some(Box::new(or(vec![flag("b")]))),
            count_op: CountOp::AtLeast,
            count: 1,
            window: Window::Lifetime,
        },
    ]);
    assert_eq!(
        normalize(rule),
        and(vec![
            not(not(flag("a"))),
            and(vec![]),
            Rule::EventCount {
                event: "e".into(),
                filter: Some(Box::new(flag("b"))),
                count_op: CountOp::AtLeast,
                count: 1,
                window: Window::Lifetime,
            },
        ])
    );
}

// ---------------------------------------------------------------------------------------
// Lexical details

#[test]
fn keywords_are_case_insensitive_and_back_quotes_free_them() {
    assert_eq!(
        parse(r#"NOT Has phone OR `last` = 1"#),
        or(vec![
            not(Rule::Has {
                trait_name: "phone".into()
            }),
            compare("last", CompareOp::Eq, Literal::Integer(1)),
        ])
    );
    for keyword in KEYWORDS {
        let rule = compare(&keyword.to_uppercase(), CompareOp::Eq, Literal::Integer(1));
        let printed = print_rule(&rule);
        assert!(printed.starts_with('`'), "{printed}");
        assert_round_trip(&rule);
    }
    // A dotted name is never a keyword.
    assert_eq!(
        parse("in.last = 1"),
        compare("in.last", CompareOp::Eq, Literal::Integer(1))
    );
}

#[test]
fn strings_and_names_take_escapes() {
    assert_eq!(
        parse(r#"`a\`b\\c` = "q\"b\\s\n\t\r\u{e9}\u{1F600}é""#),
        compare(
            "a`b\\c",
            CompareOp::Eq,
            text("q\"b\\s\n\t\r\u{e9}\u{1F600}é")
        )
    );
    let odd = compare("x", CompareOp::Eq, text("\u{0}\u{7f}\u{85}\"\\\n"));
    assert_eq!(print_rule(&odd), r#"x = "\u{0}\u{7f}\u{85}\"\\\n""#);
    assert_round_trip(&odd);
    assert_round_trip(&Rule::Has {
        trait_name: String::new(),
    });
}

#[test]
fn numbers_keep_type_range_and_bits() {
    assert_eq!(
        parse("a = -9223372036854775808"),
        compare("a", CompareOp::Eq, Literal::Integer(i64::MIN))
    );
    assert_eq!(
        parse("a = 9223372036854775807"),
        compare("a", CompareOp::Eq, Literal::Integer(i64::MAX))
    );
    assert_eq!(
        parse("a = 1.0"),
        compare("a", CompareOp::Eq, Literal::Float(1.0))
    );
    assert_eq!(
        parse("a = 1E3"),
        compare("a", CompareOp::Eq, Literal::Float(1000.0))
    );
    for value in [
        1.0,
        -0.0,
        0.1,
        1e300,
        -1e-300,
        f64::MIN_POSITIVE,
        f64::MAX,
        5e-324,
    ] {
        let rule = compare("a", CompareOp::Eq, Literal::Float(value));
        let Rule::Compare {
            value: Literal::Float(parsed),
            ..
        } = parse(&print_rule(&rule))
        else {
            panic!("{value} did not read back as a float");
        };
        assert_eq!(parsed.to_bits(), value.to_bits(), "{value:?}");
    }
    let negative_zero = Rule::RandomBucket {
        percent: -0.0,
        salt: None,
    };
    let Rule::RandomBucket { percent, .. } = parse(&print_rule(&negative_zero)) else {
        panic!("not a bucket");
    };
    assert!(percent == 0.0 && percent.is_sign_negative());
}

#[test]
fn span_units_and_counts_read_singular_and_plural() {
    assert_eq!(
        parse(r#"did "x" exactly 1 time in last 1 minute"#),
        Rule::EventCount {
            event: "x".into(),
            filter: None,
            count_op: CountOp::Exactly,
            count: 1,
            window: Window::Last {
                span: Span {
                    amount: 1,
                    unit: TimeUnit::Minutes
                }
            },
        }
    );
    assert_eq!(
        parse(r#"did "x" at most 4294967295 times"#),
        Rule::EventCount {
            event: "x".into(),
            filter: None,
            count_op: CountOp::AtMost,
            count: u32::MAX,
            window: Window::Lifetime,
        }
    );
}

#[test]
fn where_filters_nest_and_take_behavioral_rules_in_parentheses() {
    let inner = Rule::EventCount {
        event: "b".into(),
        filter: None,
        count_op: CountOp::AtLeast,
        count: 2,
        window: Window::Last { span: days(3) },
    };
    let outer = Rule::EventCount {
        event: "a".into(),
        filter: Some(Box::new(inner)),
        count_op: CountOp::AtLeast,
        count: 5,
        window: Window::Lifetime,
    };
    assert_eq!(
        print_rule(&outer),
        r#"did "a" where (did "b" at least 2 times in last 3 days) at least 5 times"#
    );
    assert_round_trip(&outer);
    // A bare boolean filter stops before the window.
    assert_eq!(
        parse(r#"did "o" where gift in last 3 days"#),
        Rule::EventCount {
            event: "o".into(),
            filter: Some(Box::new(compare(
                "gift",
                CompareOp::Eq,
                Literal::Bool(true)
            ))),
            count_op: CountOp::AtLeast,
            count: 1,
            window: Window::Last { span: days(3) },
        }
    );
}

// ---------------------------------------------------------------------------------------
// Errors: codes, positions, messages

#[test]
fn syntax_errors_say_where_and_how_to_fix() {
    let error = assert_error(
        "city =",
        "rule_syntax",
        1,
        7,
        r#"expected a value after "=", found end of rule; string values are quoted: city = "Berlin""#,
    );
    assert_eq!(error.offset(), 6);
    assert_eq!(error.token(), "");
    let error = assert_error("city = Berlin", "rule_syntax", 1, 8, "found name `Berlin`");
    assert_eq!(error.token(), "Berlin");
    assert_error(
        "city \"Berlin\"",
        "rule_syntax",
        1,
        6,
        "expected an operator after `city`",
    );
    assert_error(
        "a = 1 b = 2",
        "rule_syntax",
        1,
        7,
        "join conditions with `and` or `or`",
    );
    assert_error("(a = 1", "rule_syntax", 1, 7, "close the group");
    assert_error("a = 1)", "rule_syntax", 1, 6, "no matching");
    assert_error("", "rule_syntax", 1, 1, "the rule is empty");
    assert_error("last = 5", "rule_syntax", 1, 6, "back-quotes");
    assert_error("a and and b", "rule_syntax", 1, 7, "doubled `and`");
    assert_error(
        "x in \"a\"",
        "rule_syntax",
        1,
        6,
        "list values go in parentheses",
    );
    assert_error("a = 1 !", "rule_syntax", 1, 7, "\"!=\"");
    assert_error("a = #", "rule_syntax", 1, 5, "unexpected character '#'");
    assert_error("a = NaN", "rule_syntax", 1, 5, "must be finite");
    assert_error("a = 1e999", "rule_syntax", 1, 5, "must be finite");
    assert_error("a = 5.", "rule_syntax", 1, 5, "digits after it");
    assert_error(
        "a = 9223372036854775808",
        "rule_syntax",
        1,
        5,
        "does not fit in 64 bits",
    );
    assert_error(
        r#"did "x" at least -1 times"#,
        "rule_syntax",
        1,
        18,
        "whole number from 0 to 4294967295",
    );
    assert_error(
        r#"did not "x" at least 2 times"#,
        "rule_syntax",
        1,
        13,
        "takes no count",
    );
    assert_error(
        r#"did "x" in last 3 days in last 4 days"#,
        "rule_syntax",
        1,
        24,
        "already has a window",
    );
    assert_error(
        r#"signup_at within last 30 weeks"#,
        "rule_syntax",
        1,
        26,
        "units are minutes, hours or days",
    );
    assert_error(
        r#"sum of "o".amount in last 3 days"#,
        "rule_syntax",
        1,
        33,
        "a comparison",
    );
    assert_error(r#"a = "x\q""#, "rule_syntax", 1, 7, "unknown escape \\q");
    assert_error(
        r#"a = "\u{d800}""#,
        "rule_syntax",
        1,
        6,
        "bad unicode escape",
    );
    assert_error("a = \"open", "rule_syntax", 1, 5, "string is not closed");
    assert_error(
        "a = \"x\u{1}\"",
        "rule_syntax",
        1,
        7,
        "control character U+0001",
    );
}

#[test]
fn escape_and_filter_errors() {
    assert_error("a == 1", "rule_syntax", 1, 3, "equality is a single \"=\"");
    assert_error(
        r#"did "x" in 30 days"#,
        "rule_syntax",
        1,
        12,
        "a window is written in last 30 days",
    );
    assert_error(r#"a = "\u}""#, "rule_syntax", 1, 6, "bad unicode escape");
    assert_error(
        r#"a = "\u{1234567}""#,
        "rule_syntax",
        1,
        6,
        "bad unicode escape",
    );
    assert_error(r#"a = "\u{12"#, "rule_syntax", 1, 6, "bad unicode escape");
    assert_error(
        r#"did "o" where amount > 1 and currency = "EUR" at least 2 times"#,
        "rule_syntax",
        1,
        47,
        "put a filter of several conditions in parentheses",
    );
    assert_error(
        r#"(did "o" where a = 1 and b = 2 in last 3 days)"#,
        "rule_syntax",
        1,
        32,
        "put a filter of several conditions in parentheses",
    );
}

#[test]
fn error_positions_count_lines_and_characters() {
    // Column counts characters, not bytes: "é" and "😀" are one column each.
    let source = "city = \"Zürich\" and\n  (\"😀\" = 1)";
    let error = assert_error(
        source,
        "rule_syntax",
        2,
        4,
        "a condition starts with a trait name",
    );
    assert_eq!(error.offset(), source.find("(\"").unwrap() + 1);
    let source = "country = \"DE\"\nand age between 25 and\nand ltv > 300";
    assert_error(
        source,
        "rule_syntax",
        3,
        1,
        "expected a value after \"and\"",
    );
    let source = "a = 1 and\r\n\r\n   b = \"unclosed\n";
    assert_error(
        source,
        "rule_syntax",
        3,
        8,
        "not closed before the end of the line",
    );
}

// ---------------------------------------------------------------------------------------
// Limits, each with its own code

#[test]
fn text_above_the_limit_is_rule_too_long() {
    let filler = "a = 1 or ".repeat(limits::MAX_RULE_TEXT_BYTES / 9 + 1);
    let source = format!("{filler}a = 1");
    assert!(source.len() > limits::MAX_RULE_TEXT_BYTES);
    let error = parse_error(&source);
    assert_eq!(error.code(), "rule_too_long");
    assert_eq!(error.offset(), limits::MAX_RULE_TEXT_BYTES);
    assert!(error.message().contains("65536"));
    // Exactly at the limit is accepted.
    let mut source = "a = 1".to_string();
    while source.len() + " or a = 1".len() <= limits::MAX_RULE_TEXT_BYTES {
        source.push_str(" or a = 1");
    }
    source.push_str(&" ".repeat(limits::MAX_RULE_TEXT_BYTES - source.len()));
    assert_eq!(source.len(), limits::MAX_RULE_TEXT_BYTES);
    assert!(parse_rule(&source).is_ok());
}

#[test]
fn deep_nesting_is_rule_too_deep_without_overflowing_the_stack() {
    // As many levels as fit in the text limit (the parser's unit tests go to 100,000).
    let count = limits::MAX_RULE_TEXT_BYTES / 2 - 8;
    let parens = format!("{}a = 1{}", "(".repeat(count), ")".repeat(count));
    assert!(parens.len() <= limits::MAX_RULE_TEXT_BYTES);
    let error = parse_error(&parens);
    assert_eq!(error.code(), "rule_too_deep");
    assert_eq!(error.column(), limits::MAX_RULE_DEPTH + 1);
    let nots = format!(
        "{}a = 1",
        "not ".repeat(limits::MAX_RULE_TEXT_BYTES / 4 - 2)
    );
    let error = parse_error(&nots);
    assert_eq!(error.code(), "rule_too_deep");
    assert_eq!(error.column(), 4 * limits::MAX_RULE_DEPTH + 1);
    let wheres = format!(
        "{}x = 1",
        "did \"e\" where ".repeat(limits::MAX_RULE_TEXT_BYTES / 20)
    );
    assert_eq!(parse_error(&wheres).code(), "rule_too_deep");
    let groups = format!("{}{}", "and(".repeat(count / 3), ")".repeat(count / 3));
    assert_eq!(parse_error(&groups).code(), "rule_too_deep");
    // Unclosed input fails the same way.
    assert_eq!(parse_error(&"(".repeat(count)).code(), "rule_too_deep");
    // Far beyond the text limit, the length check answers first.
    let huge = "(".repeat(1_000_000);
    assert_eq!(parse_error(&huge).code(), "rule_too_long");
}

#[test]
fn depth_limit_is_exact() {
    // A leaf under 31 `not`s is 32 levels deep: accepted. One more is refused.
    let limit = limits::MAX_RULE_DEPTH;
    let at_limit = format!("{}a = 1", "not ".repeat(limit - 1));
    assert_eq!(parse(&at_limit).depth(), limit);
    let error = parse_error(&format!("{}a = 1", "not ".repeat(limit)));
    assert_eq!(error.code(), "rule_too_deep");
    // Tree depth counts too: `or` over `and` needs no parentheses but is two levels.
    let mut source = "a".to_string();
    for _ in 0..limit {
        source = format!("b or c and ({source})");
    }
    let error = parse_error(&source);
    assert_eq!(error.code(), "rule_too_deep");
    assert!(error.message().contains("levels deep"), "{error}");
    // Redundant parentheses count while open but do not add tree depth.
    assert_eq!(
        parse(&format!("{}a{}", "(".repeat(limit), ")".repeat(limit))).depth(),
        1
    );
}

#[test]
fn every_valid_depth_prints_and_parses() {
    // Alternating not/and/or chains up to the limit print within the nesting limit.
    let flag = compare("a", CompareOp::Eq, Literal::Bool(true));
    let mut rule = flag.clone();
    let mut step = 0;
    while rule.depth() < limits::MAX_RULE_DEPTH {
        rule = match step % 4 {
            0 => not(rule),
            1 => and(vec![rule, flag.clone()]),
            2 => or(vec![flag.clone(), rule]),
            _ => Rule::EventCount {
                event: "e".into(),
                filter: Some(Box::new(rule)),
                count_op: CountOp::AtLeast,
                count: 2,
                window: Window::Lifetime,
            },
        };
        step += 1;
        assert_round_trip(&rule);
    }
    assert_eq!(rule.depth(), limits::MAX_RULE_DEPTH);
}

#[test]
fn list_above_the_limit_is_rule_list_too_long() {
    let values = |count: usize| vec!["1"; count].join(",");
    let at_limit = format!("a in ({})", values(limits::MAX_LIST_LENGTH));
    let Rule::In { values: parsed, .. } = parse(&at_limit) else {
        panic!("not an in-list");
    };
    assert_eq!(parsed.len(), limits::MAX_LIST_LENGTH);
    let over = format!("a in ({})", values(limits::MAX_LIST_LENGTH + 1));
    let error = parse_error(&over);
    assert_eq!(error.code(), "rule_list_too_long");
    assert_eq!(error.offset(), "a in (".len() + 2 * limits::MAX_LIST_LENGTH);
}

// ---------------------------------------------------------------------------------------
// JSON AST → text → AST

#[test]
fn json_ast_to_text_and_back() {
    let json = r#"{"kind": "and", "rules": [
        {"kind": "compare", "trait": "age", "op": ">=", "value": 25},
        {"kind": "compare", "trait": "score", "op": "<", "value": 2.0},
        {"kind": "in", "trait": "status", "values": ["a", "b"], "negated": true},
        {"kind": "not", "rule": {"kind": "has", "trait": "phone"}},
        {"kind": "event_count", "event": "order_completed",
         "where": {"kind": "compare", "trait": "amount", "op": ">", "value": 100},
         "count_op": "at_least", "count": 3,
         "window": {"type": "last", "span": {"amount": 30, "unit": "days"}}},
        {"kind": "aggregate", "function": "avg", "event": "order_completed",
         "property": "amount", "window": {"type": "between", "from": "2024-01-01", "to": "2024-02-01"},
         "op": "<=", "value": 99.5},
        {"kind": "random_bucket", "percent": 33.33, "salt": "s"}
    ]}"#;
    let rule: Rule = serde_json::from_str(json).unwrap();
    let printed = print_rule(&rule);
    assert_eq!(
        printed,
        concat!(
            r#"age >= 25 and score < 2.0 and status not in ("a", "b") and not has phone"#,
            r#" and did "order_completed" where amount > 100 at least 3 times in last 30 days"#,
            r#" and avg of "order_completed".amount between "2024-01-01" and "2024-02-01" <= 99.5"#,
            r#" and random bucket 33.33% salt "s""#
        )
    );
    assert_eq!(parse(&printed), rule);
    let back: Rule =
        serde_json::from_str(&serde_json::to_string(&parse(&printed)).unwrap()).unwrap();
    assert_eq!(back, rule);
}

// ---------------------------------------------------------------------------------------
// Properties over random ASTs

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,8}",
        "[a-z][a-z0-9]{0,4}(\\.[a-z0-9_]{1,4}){1,3}",
        prop::sample::select(KEYWORDS).prop_flat_map(|keyword| {
            prop::bool::ANY.prop_map(move |upper| {
                if upper {
                    keyword.to_uppercase()
                } else {
                    keyword.to_string()
                }
            })
        }),
        "[ `\\\\\"a-z.é😀\\t\\n-]{0,8}",
        any::<String>(),
    ]
}

fn string_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,10}",
        "[\"\\\\\\n\\r\\t\\u{0}\\u{7f}\\u{85}`'é😀 ]{0,10}",
        any::<String>(),
    ]
}

fn float_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![
            0.0, -0.0, 0.1, 1.0, -1.0, 1e300, -1e300, 1e-300, 5e-324, 9e15, 1e16
        ]),
        any::<f64>().prop_filter("finite", |value| value.is_finite()),
        (-1_000_000i64..1_000_000).prop_map(|value| value as f64 / 100.0),
    ]
}

fn literal_strategy() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<bool>().prop_map(Literal::Bool),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), any::<i64>()]
            .prop_map(Literal::Integer),
        float_strategy().prop_map(Literal::Float),
        string_strategy().prop_map(Literal::String),
    ]
}

fn span_strategy() -> impl Strategy<Value = Span> {
    (
        prop_oneof![Just(0u32), Just(1u32), Just(u32::MAX), any::<u32>()],
        prop::sample::select(vec![TimeUnit::Minutes, TimeUnit::Hours, TimeUnit::Days]),
    )
        .prop_map(|(amount, unit)| Span { amount, unit })
}

fn compare_op_strategy() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::NotEq,
        CompareOp::Less,
        CompareOp::LessOrEqual,
        CompareOp::Greater,
        CompareOp::GreaterOrEqual,
    ])
}

fn recency_strategy() -> impl Strategy<Value = Recency> {
    prop::sample::select(vec![
        Recency::WithinLast,
        Recency::WithinNext,
        Recency::MoreThanAgo,
        Recency::LessThanAgo,
    ])
}

fn window_strategy() -> impl Strategy<Value = Window> {
    prop_oneof![
        Just(Window::Lifetime),
        span_strategy().prop_map(|span| Window::Last { span }),
        (string_strategy(), string_strategy()).prop_map(|(from, to)| Window::Between { from, to }),
    ]
}

fn leaf_strategy() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (name_strategy(), compare_op_strategy(), literal_strategy()).prop_map(
            |(trait_name, op, value)| Rule::Compare {
                trait_name,
                op,
                value
            }
        ),
        (name_strategy(), literal_strategy(), literal_strategy()).prop_map(
            |(trait_name, low, high)| Rule::Between {
                trait_name,
                low,
                high
            }
        ),
        (
            name_strategy(),
            prop::collection::vec(literal_strategy(), 0..4),
            any::<bool>()
        )
            .prop_map(|(trait_name, values, negated)| Rule::In {
                trait_name,
                values,
                negated
            }),
        (
            name_strategy(),
            prop::sample::select(vec![TextOp::Contains, TextOp::StartsWith, TextOp::EndsWith]),
            string_strategy()
        )
            .prop_map(|(trait_name, op, value)| Rule::Text {
                trait_name,
                op,
                value
            }),
        name_strategy().prop_map(|trait_name| Rule::Has { trait_name }),
        (name_strategy(), recency_strategy(), span_strategy()).prop_map(
            |(trait_name, recency, span)| Rule::Recent {
                trait_name,
                recency,
                span
            }
        ),
        string_strategy().prop_map(|segment| Rule::InSegment { segment }),
        (float_strategy(), prop::option::of(string_strategy()))
            .prop_map(|(percent, salt)| Rule::RandomBucket { percent, salt }),
        (
            string_strategy(),
            prop::sample::select(vec![Performed::First, Performed::Last]),
            recency_strategy(),
            span_strategy()
        )
            .prop_map(|(event, which, recency, span)| Rule::Performed {
                event,
                which,
                recency,
                span
            }),
    ]
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    leaf_strategy().prop_recursive(5, 48, 4, |inner| {
        let filter = prop::option::of(inner.clone().prop_map(Box::new));
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|rules| Rule::And { rules }),
            prop::collection::vec(inner.clone(), 0..5).prop_map(|rules| Rule::Or { rules }),
            inner.clone().prop_map(|rule| Rule::Not {
                rule: Box::new(rule)
            }),
            (
                string_strategy(),
                filter.clone(),
                prop::sample::select(vec![CountOp::AtLeast, CountOp::AtMost, CountOp::Exactly]),
                prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
                window_strategy()
            )
                .prop_map(|(event, filter, count_op, count, window)| {
                    Rule::EventCount {
                        event,
                        filter,
                        count_op,
                        count,
                        window,
                    }
                }),
            (
                prop::sample::select(vec![
                    AggregateFunction::Sum,
                    AggregateFunction::Avg,
                    AggregateFunction::Min,
                    AggregateFunction::Max,
                    AggregateFunction::CountDistinct
                ]),
                string_strategy(),
                name_strategy(),
                filter,
                window_strategy(),
                compare_op_strategy(),
                float_strategy()
            )
                .prop_map(|(function, event, property, filter, window, op, value)| {
                    Rule::Aggregate {
                        function,
                        event,
                        property,
                        filter,
                        window,
                        op,
                        value,
                    }
                }),
        ]
    })
}

/// Wraps `rule` in one more level of one of the kinds that nest.
fn wrap(rule: Rule, kind: u8) -> Rule {
    let flag = compare("f", CompareOp::Eq, Literal::Bool(false));
    match kind % 9 {
        0 => not(rule),
        1 => and(vec![rule, flag]),
        2 => and(vec![flag, rule]),
        3 => or(vec![rule, flag]),
        4 => or(vec![flag, rule]),
        5 => and(vec![rule]),
        6 => or(vec![rule]),
        7 => Rule::EventCount {
            event: "e".into(),
            filter: Some(Box::new(rule)),
            count_op: CountOp::AtMost,
            count: 2,
            window: Window::Last { span: days(3) },
        },
        _ => Rule::Aggregate {
            function: AggregateFunction::Max,
            event: "e".into(),
            property: "p".into(),
            filter: Some(Box::new(rule)),
            window: Window::Lifetime,
            op: CompareOp::Less,
            value: 1.5,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Every tree up to the depth limit prints to text within the nesting limit, and one
    // level more is refused as too deep, whatever mix of levels it is made of.
    #[test]
    fn depth_limit_holds_for_any_mix_of_levels(
        kinds in prop::collection::vec(any::<u8>(), limits::MAX_RULE_DEPTH)
    ) {
        let mut rule = Rule::Has { trait_name: "h".into() };
        for kind in &kinds[..limits::MAX_RULE_DEPTH - 1] {
            rule = wrap(rule, *kind);
        }
        prop_assert_eq!(rule.depth(), limits::MAX_RULE_DEPTH);
        let printed = print_rule(&rule);
        prop_assert_eq!(parse_rule(&printed), Ok(rule.clone()), "printed as {}", printed);
        let deeper = wrap(rule, kinds[limits::MAX_RULE_DEPTH - 1]);
        let error = parse_rule(&print_rule(&deeper)).unwrap_err();
        prop_assert_eq!(error.code(), "rule_too_deep");
    }

    #[test]
    fn printed_text_parses_back_to_the_same_ast(rule in rule_strategy()) {
        let printed = print_rule(&rule);
        match parse_rule(&printed) {
            Ok(parsed) => prop_assert_eq!(parsed, rule, "printed as {}", printed),
            Err(error) => prop_assert!(false, "{:?} does not parse: {}", printed, error),
        }
    }

    #[test]
    fn normalize_is_idempotent_and_round_trips(rule in rule_strategy()) {
        let once = normalize(rule);
        prop_assert_eq!(normalize(once.clone()), once.clone());
        prop_assert_eq!(parse_rule(&print_rule(&once)), Ok(once));
    }

    // Random sequences of real tokens reach deep into the grammar; the parser answers
    // with a rule or an error, never a panic, and a rule it accepts prints back to itself.
    #[test]
    fn token_soup_parses_or_fails_cleanly(
        tokens in prop::collection::vec(
            prop_oneof![
                prop::sample::select(KEYWORDS).prop_map(str::to_string),
                prop::sample::select(vec![
                    "(", ")", ",", ".", "%", "=", "!=", "<", "<=", ">", ">=", "x", "a.b",
                    "`q`", "\"s\"", "1", "-2", "0.5", "1e3", "30",
                ])
                .prop_map(str::to_string),
            ],
            0..24,
        )
    ) {
        let source = tokens.join(" ");
        match parse_rule(&source) {
            Ok(rule) => prop_assert_eq!(parse_rule(&print_rule(&rule)), Ok(rule)),
            Err(error) => {
                prop_assert!(source.is_char_boundary(error.offset()));
                prop_assert!(!error.message().is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_unicode_never_panics(source in any::<String>()) {
        if let Err(error) = parse_rule(&source) {
            prop_assert!(source.is_char_boundary(error.offset()));
        }
    }

    #[test]
    fn parsing_any_text_never_panics(source in "[a-z \"`()=<>!.,%0-9{}\\\\\n-]{0,60}") {
        if let Err(error) = parse_rule(&source) {
            prop_assert!(error.offset() <= source.len());
            prop_assert!(source.is_char_boundary(error.offset()));
        }
    }
}

#[test]
fn readme_error_example_is_exact() {
    let error = parse_error("country = \"DE\" and\ncity = Berlin");
    assert_eq!(error.code(), "rule_syntax");
    assert_eq!(
        (error.line(), error.column(), error.token()),
        (2, 8, "Berlin")
    );
    assert_eq!(
        error.message(),
        "expected a value after \"=\", found name `Berlin`; string values are quoted: city = \"Berlin\"; numbers and true/false are not"
    );
    assert_eq!(error.offset(), 26);
    let readme = include_str!("../README.md");
    assert!(readme.contains("code `rule_syntax`, offset 26, token `Berlin`"));
    assert!(
        readme.contains(&format!("\n{error}\n")),
        "README shows another message"
    );
}

// ---------------------------------------------------------------------------------------
// Through the engine: text rules compile, and stored rules print back to their AST

#[test]
fn engine_accepts_text_rules_and_reports_positions() {
    use segd::engine::{Engine, EngineOptions, RuleInput};
    use serde_json::json;
    let engine = Engine::new(EngineOptions {
        shards: 2,
        ..EngineOptions::default()
    });
    for (user, traits) in [
        (
            "u1",
            json!({"country": "DE", "age": 30, "tags": ["vip"], "ltv": 50}),
        ),
        ("u2", json!({"country": "FR", "age": 50, "phone": "+33 1"})),
        ("u3", json!({"country": "DE", "age": 41, "ltv": 2000})),
    ] {
        engine
            .identify(Some(user), None, traits.as_object().unwrap())
            .unwrap();
    }
    for (name, source, description) in segd::demo::demo_segments() {
        let summary = engine
            .create_segment(name, description, Some(RuleInput::Text(source.into())))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let printed = summary.rule.expect("dynamic segments have rule text");
        assert_eq!(Some(parse(&printed)), summary.rule_ast, "{name}");
    }
    let vip = engine.segment_id("vip").unwrap();
    let mut members = engine.all_members(vip);
    members.sort();
    assert_eq!(members, ["u1", "u3"]);
    let text_count = engine
        .preview(
            RuleInput::Text(r#"country = "DE" and age between 25 and 40"#.into()),
            0,
        )
        .unwrap()
        .count;
    assert_eq!(text_count, 1);
    let error = engine
        .preview(RuleInput::Text("country = \"DE\" and\n  age >".into()), 0)
        .unwrap_err();
    assert_eq!(error.code(), "rule_syntax");
    assert!(
        error
            .to_string()
            .starts_with("line 2, column 8: expected a value after \">\""),
        "{error}"
    );
}

// The grammar and the reserved words are written twice (module doc and README); they
// must stay identical.
#[test]
fn readme_grammar_matches_the_parser_module_doc() {
    fn grammar(text: &str, line_prefix: &str) -> Vec<String> {
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                line.strip_prefix(line_prefix)
                    .unwrap_or(line)
                    .trim_end()
                    .to_string()
            })
            .collect();
        let start = lines
            .iter()
            .position(|line| line.starts_with("rule      :="))
            .expect("grammar start");
        let end = lines
            .iter()
            .position(|line| line.starts_with("number    :="))
            .expect("grammar end");
        lines[start..=end].to_vec()
    }
    let readme = include_str!("../README.md");
    let module = include_str!("../src/segment/parser.rs");
    assert_eq!(grammar(readme, ""), grammar(module, "//! "));
    let reserved_start = readme.find("Reserved words:").expect("reserved word list");
    let reserved_end = reserved_start + readme[reserved_start..].find("`.").unwrap();
    let listed: Vec<&str> = readme[reserved_start + "Reserved words:".len()..reserved_end]
        .split(|c: char| c.is_whitespace() || c == '`')
        .filter(|word| !word.is_empty())
        .collect();
    assert_eq!(listed, KEYWORDS);
}

// Behavioral text rules evaluate in the engine as their words say.
#[test]
fn engine_evaluates_behavioral_text_rules() {
    use segd::clock::ManualClock;
    use segd::engine::{Engine, EngineOptions, RuleInput};
    use serde_json::json;
    const NOW_MS: i64 = 1_750_000_000_000;
    const DAY_MS: i64 = 86_400_000;
    let engine = Engine::with_clock(
        EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        },
        ManualClock::new(NOW_MS),
    );
    let orders = [
        ("big", vec![(150, 1), (200, 5), (101, 20)]),
        ("small", vec![(50, 1), (60, 2), (300, 3)]),
        ("old", vec![(500, 40), (500, 45)]),
    ];
    for (user, amounts) in &orders {
        engine
            .identify(
                Some(user),
                None,
                json!({"plan": "pro"}).as_object().unwrap(),
            )
            .unwrap();
        for (amount, days_ago) in amounts {
            engine
                .track(
                    Some(user),
                    None,
                    "order_completed",
                    NOW_MS - days_ago * DAY_MS,
                    json!({"amount": amount}).as_object().unwrap(),
                )
                .unwrap();
        }
    }
    let members = |source: &str| {
        let mut sample = engine
            .preview(RuleInput::Text(source.into()), 10)
            .unwrap_or_else(|error| panic!("{source}: {error}"))
            .sample;
        sample.sort();
        sample
    };
    assert_eq!(
        members(r#"did "order_completed" where amount > 100 at least 2 times in last 30 days"#),
        ["big"]
    );
    assert_eq!(
        members(r#"did not "order_completed" in last 30 days"#),
        ["old"]
    );
    assert_eq!(
        members(r#"sum of "order_completed".amount in last 30 days >= 400"#),
        ["big", "small"]
    );
    assert_eq!(
        members(r#"last "order_completed" more than 30 days ago and plan = "pro""#),
        ["old"]
    );
}
