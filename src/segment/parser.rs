//! The rule text syntax: a hand-written lexer and recursive-descent parser producing the
//! one [`Rule`] AST, and [`normalize`], the canonical form every rule is stored in.
//!
//! Pipeline: text → [`lex`] (tokens with byte spans) → `Parser` (recursive descent,
//! nesting bounded so no input can overflow the stack) → [`Rule`].
//!
//! # Grammar
//!
//! Precedence: `not` binds tighter than `and`, which binds tighter than `or`. Parentheses
//! group and are kept: `(a and b) and c` is an `and` inside an `and`, while
//! `a and b and c` is one `and` of three.
//!
//! ```text
//! rule      := or_expr
//! or_expr   := and_expr ("or" and_expr)*
//! and_expr  := unary ("and" unary)*
//! unary     := "not" unary
//!            | "(" rule ")"
//!            | ("and" | "or") "(" [rule ("," rule)* [","]] ")"   -- group of any size
//!            | condition
//! condition := ident cmp literal                        -- cmp: = != < <= > >=
//!            | ident "between" literal "and" literal    -- inclusive
//!            | ident ["not"] "in" "(" [literal ("," literal)* [","]] ")"
//!            | ident ("contains" | "starts_with" | "ends_with") string
//!            | "has" ident | ident "exists"
//!            | ident recency                            -- timestamp traits
//!            | "in" "segment" string
//!            | "random" "bucket" number "%" ["salt" string]
//!            | "did" string clause*                     -- where, count, window; each once
//!            | "did" "not" string clause*               -- where, window; means exactly 0
//!            | ("first" | "last") string recency
//!            | agg "of" string "." ident clause* cmp number   -- where, window; each once
//!            | ident                                    -- boolean trait: ident = true
//! clause    := "where" filter | count | window
//! filter    := unary                                    -- names are event properties
//! count     := ("at" "least" | "at" "most" | "exactly") integer ("time" | "times")
//! window    := "in" "last" span | "between" string "and" string
//! recency   := "within" ("last" | "next") span | ("more" | "less") "than" span "ago"
//! span      := integer ("minute" | "minutes" | "hour" | "hours" | "day" | "days")
//! agg       := "sum" | "avg" | "min" | "max" | "count" "distinct"
//! literal   := string | integer | float | "true" | "false"
//! number    := integer | float
//! ```
//!
//! Lexical rules:
//! - Keywords are case-insensitive and reserved: [`KEYWORDS`]. A trait named like a
//!   keyword is back-quoted: `` `last` = 5 ``.
//! - `ident` is a dotted name `[A-Za-z_][A-Za-z0-9_]*` followed by any number of
//!   `.[A-Za-z0-9_]+` (a dotted name is never a keyword), or any text in back-quotes:
//!   `` `first name` ``.
//! - Strings are double-quoted with escapes `\"` `\\` `\n` `\r` `\t` `\u{1F600}`;
//!   back-quoted names take the same escapes plus `` \` ``. Raw line breaks and control
//!   characters other than tab are not allowed inside either.
//! - Integers are i64 (a leading `-` belongs to the number; out of range is an error, not
//!   a wrap). A number with a fraction or exponent (`0.5`, `1e300`, `-0.0`) is a float;
//!   it must be finite. Where the AST holds a float (percent, aggregate value) an integer
//!   is taken as that float.
//! - `did "e"` alone means at least once, ever; `did not "e"` means exactly 0 times.
//!
//! Limits (each its own [`ParseErrorKind`]): text at most
//! [`limits::MAX_RULE_TEXT_BYTES`]; at most [`limits::MAX_RULE_DEPTH`] levels of `(`,
//! `not` and `where` open at any point, and a resulting tree at most that deep; at most
//! [`limits::MAX_LIST_LENGTH`] values in one `in (...)` list.
//!
//! # Normal form
//!
//! [`normalize`] replaces every `and`/`or` of exactly one rule by that rule (in filters
//! too) and changes nothing else: grouping, order, double `not` and empty groups (which
//! `compile` rejects with `rule_empty_group`) are kept. It is idempotent.

use crate::segment::ast::{
    AggregateFunction, CompareOp, CountOp, Literal, Performed, Recency, Rule, Span, TextOp,
    TimeUnit, Window,
};
use crate::segment::limits;
use std::fmt;

/// Which limit or rule of the syntax a [`ParseError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    Syntax,
    TooLong,
    TooDeep,
    ListTooLong,
}

/// A rule text that could not be parsed: where, what was found and how to fix it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    kind: ParseErrorKind,
    offset: usize,
    line: usize,
    column: usize,
    token: String,
    message: String,
}

impl ParseError {
    /// Stable machine-readable code for HTTP errors.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ParseErrorKind::Syntax => "rule_syntax",
            ParseErrorKind::TooLong => "rule_too_long",
            ParseErrorKind::TooDeep => "rule_too_deep",
            ParseErrorKind::ListTooLong => "rule_list_too_long",
        }
    }

    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// Byte offset of the offending token in the rule text.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// 1-based line of the offending token.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column of the offending token, counted in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The offending token as written (empty at the end of the rule).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What was expected and how to fix it, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Longest excerpt of a token quoted in an error.
const MAX_ERROR_TOKEN_CHARS: usize = 40;

fn make_error(
    source: &str,
    kind: ParseErrorKind,
    start: usize,
    end: usize,
    message: String,
) -> ParseError {
    let before = &source[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = source[line_start..start].chars().count() + 1;
    ParseError {
        kind,
        offset: start,
        line,
        column,
        token: source[start..end].to_string(),
        message,
    }
}

/// Declares the keyword enum and the public list of reserved words from one table.
macro_rules! keywords {
    ($($variant:ident => $text:literal,)*) => {
        /// A reserved word.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Keyword {
            $($variant,)*
        }

        impl Keyword {
            const ALL: &'static [Keyword] = &[$(Keyword::$variant,)*];

            fn text(self) -> &'static str {
                match self {
                    $(Keyword::$variant => $text,)*
                }
            }
        }

        /// Every reserved word (matched case-insensitively). Trait names spelled like one
        /// are back-quoted.
        pub const KEYWORDS: &[&str] = &[$($text,)*];
    };
}

keywords! {
    And => "and",
    Or => "or",
    Not => "not",
    Between => "between",
    In => "in",
    Contains => "contains",
    StartsWith => "starts_with",
    EndsWith => "ends_with",
    Has => "has",
    Exists => "exists",
    Within => "within",
    Last => "last",
    Next => "next",
    More => "more",
    Less => "less",
    Than => "than",
    Ago => "ago",
    Segment => "segment",
    Random => "random",
    Bucket => "bucket",
    Salt => "salt",
    Did => "did",
    Where => "where",
    At => "at",
    Least => "least",
    Most => "most",
    Exactly => "exactly",
    Time => "time",
    Times => "times",
    First => "first",
    Sum => "sum",
    Avg => "avg",
    Min => "min",
    Max => "max",
    Count => "count",
    Distinct => "distinct",
    Of => "of",
    Minute => "minute",
    Minutes => "minutes",
    Hour => "hour",
    Hours => "hours",
    Day => "day",
    Days => "days",
    True => "true",
    False => "false",
}

impl Keyword {
    fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .iter()
            .copied()
            .find(|keyword| keyword.text().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.text())
    }
}

/// True when `word` is reserved (any letter case).
pub fn is_keyword(word: &str) -> bool {
    Keyword::from_word(word).is_some()
}

/// True when `name` can be written without back-quotes: a dotted name whose first
/// character is a letter or `_`, and not a keyword.
pub fn is_bare_identifier(name: &str) -> bool {
    let mut segments = name.split('.');
    let Some(first) = segments.next() else {
        return false;
    };
    let word_character = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let first_ok = first
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && first.chars().all(word_character);
    let rest_ok =
        segments.all(|segment| !segment.is_empty() && segment.chars().all(word_character));
    first_ok && rest_ok && (name.contains('.') || !is_keyword(name))
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Symbol {
    OpenParen,
    CloseParen,
    Comma,
    Dot,
    Percent,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Symbol {
    fn text(self) -> &'static str {
        match self {
            Symbol::OpenParen => "(",
            Symbol::CloseParen => ")",
            Symbol::Comma => ",",
            Symbol::Dot => ".",
            Symbol::Percent => "%",
            Symbol::Equal => "=",
            Symbol::NotEqual => "!=",
            Symbol::Less => "<",
            Symbol::LessOrEqual => "<=",
            Symbol::Greater => ">",
            Symbol::GreaterOrEqual => ">=",
        }
    }

    fn compare_op(self) -> Option<CompareOp> {
        Some(match self {
            Symbol::Equal => CompareOp::Eq,
            Symbol::NotEqual => CompareOp::NotEq,
            Symbol::Less => CompareOp::Less,
            Symbol::LessOrEqual => CompareOp::LessOrEqual,
            Symbol::Greater => CompareOp::Greater,
            Symbol::GreaterOrEqual => CompareOp::GreaterOrEqual,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum TokenKind {
    Keyword(Keyword),
    /// A bare or back-quoted name.
    Identifier {
        name: String,
        quoted: bool,
    },
    String(String),
    Integer(i64),
    Float(f64),
    Symbol(Symbol),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
}

struct Lexer<'a> {
    source: &'a str,
    position: usize,
}

impl<'a> Lexer<'a> {
    fn peek_char(&self) -> Option<char> {
        self.source[self.position..].chars().next()
    }

    fn char_at(&self, offset: usize) -> Option<char> {
        self.source
            .get(offset..)
            .and_then(|rest| rest.chars().next())
    }

    fn error(&self, start: usize, end: usize, message: String) -> ParseError {
        make_error(self.source, ParseErrorKind::Syntax, start, end, message)
    }

    fn tokens(mut self) -> Result<Vec<Token>, ParseError> {
        let mut tokens = Vec::new();
        loop {
            while let Some(c) = self.peek_char() {
                if !c.is_whitespace() {
                    break;
                }
                self.position += c.len_utf8();
            }
            let start = self.position;
            let Some(c) = self.peek_char() else {
                tokens.push(Token {
                    kind: TokenKind::End,
                    start,
                    end: start,
                });
                return Ok(tokens);
            };
            let kind = match c {
                '=' if self.char_at(start + 1) == Some('=') => {
                    return Err(self.error(
                        start,
                        start + 2,
                        "\"==\" is not an operator; equality is a single \"=\": city = \"Berlin\""
                            .into(),
                    ))
                }
                '(' | ')' | ',' | '.' | '%' | '=' => {
                    self.position += 1;
                    TokenKind::Symbol(match c {
                        '(' => Symbol::OpenParen,
                        ')' => Symbol::CloseParen,
                        ',' => Symbol::Comma,
                        '.' => Symbol::Dot,
                        '%' => Symbol::Percent,
                        _ => Symbol::Equal,
                    })
                }
                '<' | '>' | '!' => {
                    let with_equal = self.char_at(start + 1) == Some('=');
                    self.position += if with_equal { 2 } else { 1 };
                    TokenKind::Symbol(match (c, with_equal) {
                        ('<', false) => Symbol::Less,
                        ('<', true) => Symbol::LessOrEqual,
                        ('>', false) => Symbol::Greater,
                        ('>', true) => Symbol::GreaterOrEqual,
                        ('!', true) => Symbol::NotEqual,
                        _ => {
                            return Err(self.error(
                                start,
                                start + 1,
                                "unexpected \"!\"; write \"!=\" for not equal, or `not` to negate a condition".into(),
                            ))
                        }
                    })
                }
                '"' => TokenKind::String(self.quoted('"')?),
                '`' => TokenKind::Identifier {
                    name: self.quoted('`')?,
                    quoted: true,
                },
                '-' | '0'..='9' => self.number()?,
                c if c.is_ascii_alphabetic() || c == '_' => self.word(),
                other => {
                    let end = start + other.len_utf8();
                    return Err(self.error(
                        start,
                        end,
                        format!(
                            "unexpected character {other:?}; names with other characters go in back-quotes like `first name`, text values in double quotes like \"Berlin\""
                        ),
                    ));
                }
            };
            tokens.push(Token {
                kind,
                start,
                end: self.position,
            });
        }
    }

    fn word(&mut self) -> TokenKind {
        let start = self.position;
        let is_word_character = |c: char| c.is_ascii_alphanumeric() || c == '_';
        loop {
            match self.peek_char() {
                Some(c) if is_word_character(c) => self.position += 1,
                // A dot continues the name only when a name character follows it.
                Some('.')
                    if self
                        .char_at(self.position + 1)
                        .is_some_and(is_word_character) =>
                {
                    self.position += 1
                }
                _ => break,
            }
        }
        let text = &self.source[start..self.position];
        match Keyword::from_word(text) {
            Some(keyword) if !text.contains('.') => TokenKind::Keyword(keyword),
            _ => TokenKind::Identifier {
                name: text.to_string(),
                quoted: false,
            },
        }
    }

    fn number(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.position;
        if self.peek_char() == Some('-') {
            self.position += 1;
            if !self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error(
                    start,
                    start + 1,
                    "unexpected \"-\"; a negative number is written with the minus next to its digits, like -5".into(),
                ));
            }
        }
        self.digits();
        let mut is_float = false;
        if self.peek_char() == Some('.') {
            if self
                .char_at(self.position + 1)
                .is_some_and(|c| c.is_ascii_digit())
            {
                self.position += 1;
                self.digits();
                is_float = true;
            } else {
                return Err(self.error(
                    start,
                    self.position + 1,
                    "a decimal point needs digits after it, like 5.0".into(),
                ));
            }
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let after = self.char_at(self.position + 1);
            let exponent_digit_at = if matches!(after, Some('+' | '-')) {
                self.position + 2
            } else {
                self.position + 1
            };
            if self
                .char_at(exponent_digit_at)
                .is_some_and(|c| c.is_ascii_digit())
            {
                self.position = exponent_digit_at;
                self.digits();
                is_float = true;
            }
        }
        let text = &self.source[start..self.position];
        if is_float {
            let value: f64 = text.parse().map_err(|_| {
                self.error(start, self.position, format!("`{text}` is not a number"))
            })?;
            if !value.is_finite() {
                return Err(self.error(
                    start,
                    self.position,
                    format!("number {text} is too large; numbers must be finite (at most about 1.8e308)"),
                ));
            }
            Ok(TokenKind::Float(value))
        } else {
            text.parse::<i64>().map(TokenKind::Integer).map_err(|_| {
                self.error(
                    start,
                    self.position,
                    format!(
                        "integer {text} does not fit in 64 bits ({} to {}); write a float like {text}.0 if an approximate value is meant",
                        i64::MIN,
                        i64::MAX
                    ),
                )
            })
        }
    }

    fn digits(&mut self) {
        while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
            self.position += 1;
        }
    }

    /// A `"string"` or `` `name` `` with escapes; `self.position` is at the opening quote.
    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.position;
        self.position += 1;
        let mut text = String::new();
        let what = if quote == '"' {
            "string"
        } else {
            "back-quoted name"
        };
        loop {
            let Some(c) = self.peek_char() else {
                return Err(self.error(
                    start,
                    self.position,
                    format!("{what} is not closed; add a closing {quote}"),
                ));
            };
            let character_start = self.position;
            self.position += c.len_utf8();
            match c {
                c if c == quote => return Ok(text),
                '\\' => text.push(self.escape(character_start, quote)?),
                '\n' => {
                    return Err(self.error(
                        start,
                        character_start,
                        format!("{what} is not closed before the end of the line; add a closing {quote}, or write a line break as \\n"),
                    ))
                }
                '\t' => text.push('\t'),
                c if c.is_control() => {
                    return Err(self.error(
                        character_start,
                        self.position,
                        format!(
                            "control character U+{:04X} inside a {what}; write it as \\u{{{:x}}}",
                            u32::from(c),
                            u32::from(c)
                        ),
                    ))
                }
                c => text.push(c),
            }
        }
    }

    /// The character after a backslash; `escape_start` is the backslash.
    fn escape(&mut self, escape_start: usize, quote: char) -> Result<char, ParseError> {
        let help = if quote == '"' {
            "escapes are \\\" \\\\ \\n \\r \\t and \\u{hex}"
        } else {
            "escapes are \\` \\\\ \\n \\r \\t and \\u{hex}"
        };
        let Some(c) = self.peek_char() else {
            return Err(self.error(
                escape_start,
                self.position,
                format!("the rule ends inside an escape; {help}"),
            ));
        };
        self.position += c.len_utf8();
        Ok(match c {
            '\\' => '\\',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            c if c == quote => quote,
            'u' => self.unicode_escape(escape_start)?,
            other => {
                return Err(self.error(
                    escape_start,
                    self.position,
                    format!("unknown escape \\{other}; {help}"),
                ))
            }
        })
    }
}

/// Longest `\u{...}`: six hex digits cover every Unicode scalar value.
const MAX_UNICODE_ESCAPE_DIGITS: usize = 6;

impl Lexer<'_> {
    /// After `\u`: `{`, 1 to 6 hex digits of a scalar value, `}`.
    fn unicode_escape(&mut self, escape_start: usize) -> Result<char, ParseError> {
        let bad = |lexer: &Self| {
            lexer.error(
                escape_start,
                lexer.position,
                "bad unicode escape; write 1 to 6 hex digits of a Unicode scalar value in braces, like \\u{e9} or \\u{1F600}".into(),
            )
        };
        if self.peek_char() != Some('{') {
            return Err(bad(self));
        }
        self.position += 1;
        let digits_start = self.position;
        while self.peek_char().is_some_and(|c| c.is_ascii_hexdigit())
            && self.position - digits_start < MAX_UNICODE_ESCAPE_DIGITS
        {
            self.position += 1;
        }
        let digits = &self.source[digits_start..self.position];
        if digits.is_empty() || self.peek_char() != Some('}') {
            return Err(bad(self));
        }
        self.position += 1;
        u32::from_str_radix(digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| bad(self))
    }
}

// ---------------------------------------------------------------------------------------
// Parser

/// Parses rule text into the AST. See the module doc for the grammar and limits.
pub fn parse_rule(text: &str) -> Result<Rule, ParseError> {
    if text.len() > limits::MAX_RULE_TEXT_BYTES {
        let mut at = limits::MAX_RULE_TEXT_BYTES;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        return Err(make_error(
            text,
            ParseErrorKind::TooLong,
            at,
            at,
            format!(
                "rule text is {} bytes; the limit is {} bytes — split it into smaller segments and combine them with `in segment \"name\"`",
                text.len(),
                limits::MAX_RULE_TEXT_BYTES
            ),
        ));
    }
    parse_any_length(text)
}

/// The parser proper; `parse_rule` bounds the length first. Nesting is bounded here, so
/// this is safe on input of any length.
fn parse_any_length(text: &str) -> Result<Rule, ParseError> {
    let tokens = Lexer {
        source: text,
        position: 0,
    }
    .tokens()?;
    let mut parser = Parser {
        source: text,
        tokens,
        position: 0,
        nesting: 0,
    };
    if parser.peek().kind == TokenKind::End {
        return Err(parser
            .error_here("the rule is empty; write a condition such as country = \"DE\"".into()));
    }
    let rule = parser.rule()?;
    let token = parser.peek();
    if token.kind != TokenKind::End {
        let hint = match &token.kind {
            TokenKind::Symbol(Symbol::CloseParen) => "this \")\" has no matching \"(\"",
            kind => continuation_hint(kind).unwrap_or("join conditions with `and` or `or`"),
        };
        return Err(parser.expected("`and`, `or` or the end of the rule", hint));
    }
    Ok(rule)
}

const FILTER_IN_PARENTHESES_HINT: &str = "a `where` filter ends at the first `and`/`or`; put a filter of several conditions in parentheses: did \"order_completed\" where (amount > 100 and currency = \"EUR\") at least 2 times";

/// A hint when a count, window or filter turns up after a complete condition: usually a
/// `where` filter of several conditions written without parentheses.
fn continuation_hint(kind: &TokenKind) -> Option<&'static str> {
    match kind {
        TokenKind::Keyword(
            Keyword::At | Keyword::Exactly | Keyword::Where | Keyword::In | Keyword::Between,
        ) => Some(FILTER_IN_PARENTHESES_HINT),
        _ => None,
    }
}

/// How a token is named in error messages.
fn describe(kind: &TokenKind) -> String {
    fn excerpt(text: &str) -> String {
        if text.chars().count() > MAX_ERROR_TOKEN_CHARS {
            let short: String = text.chars().take(MAX_ERROR_TOKEN_CHARS).collect();
            format!("{short}…")
        } else {
            text.to_string()
        }
    }
    match kind {
        TokenKind::Keyword(keyword) => format!("keyword `{keyword}`"),
        TokenKind::Identifier { name, .. } => format!("name `{}`", excerpt(name)),
        TokenKind::String(text) => format!("string {:?}", excerpt(text)),
        TokenKind::Integer(value) => format!("number {value}"),
        TokenKind::Float(value) => format!("number {value:?}"),
        TokenKind::Symbol(symbol) => format!("\"{}\"", symbol.text()),
        TokenKind::End => "end of rule".into(),
    }
}

struct Parser<'a> {
    source: &'a str,
    /// Always ends with an `End` token.
    tokens: Vec<Token>,
    position: usize,
    /// `(`, `not` and `where` currently open; bounded so recursion is bounded.
    nesting: usize,
}

type Parsed<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    fn peek(&self) -> Token {
        self.tokens[self.position].clone()
    }

    fn peek_kind(&self) -> &TokenKind {
        &self.tokens[self.position].kind
    }

    fn peek_second_kind(&self) -> &TokenKind {
        let index = (self.position + 1).min(self.tokens.len() - 1);
        &self.tokens[index].kind
    }

    fn advance(&mut self) -> Token {
        let token = self.peek();
        if self.position + 1 < self.tokens.len() {
            self.position += 1;
        }
        token
    }

    fn at_keyword(&self, keyword: Keyword) -> bool {
        matches!(self.peek_kind(), TokenKind::Keyword(found) if *found == keyword)
    }

    fn at_symbol(&self, symbol: Symbol) -> bool {
        *self.peek_kind() == TokenKind::Symbol(symbol)
    }

    /// The comparison operator at the current token, with its text.
    fn compare_op_here(&self) -> Option<(CompareOp, &'static str)> {
        match self.peek_kind() {
            TokenKind::Symbol(symbol) => symbol.compare_op().map(|op| (op, symbol.text())),
            _ => None,
        }
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        let found = self.at_keyword(keyword);
        if found {
            self.advance();
        }
        found
    }

    fn eat_symbol(&mut self, symbol: Symbol) -> bool {
        let found = self.at_symbol(symbol);
        if found {
            self.advance();
        }
        found
    }

    fn error_at(&self, kind: ParseErrorKind, token: &Token, message: String) -> ParseError {
        make_error(self.source, kind, token.start, token.end, message)
    }

    fn error_here(&self, message: String) -> ParseError {
        let token = self.peek();
        self.error_at(ParseErrorKind::Syntax, &token, message)
    }

    /// "expected X, found Y; hint" at the current token.
    fn expected(&self, what: &str, hint: &str) -> ParseError {
        let found = describe(self.peek_kind());
        let hint = if hint.is_empty() {
            String::new()
        } else {
            format!("; {hint}")
        };
        self.error_here(format!("expected {what}, found {found}{hint}"))
    }

    fn expect_keyword(&mut self, keyword: Keyword, hint: &str) -> Parsed<()> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{keyword}`"), hint))
        }
    }

    fn expect_symbol(&mut self, symbol: Symbol, hint: &str) -> Parsed<()> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(self.expected(&format!("\"{}\"", symbol.text()), hint))
        }
    }

    /// Opens one nesting level at the current token; fails past the depth limit.
    fn enter(&mut self) -> Parsed<()> {
        if self.nesting >= limits::MAX_RULE_DEPTH {
            let token = self.peek();
            return Err(self.error_at(
                ParseErrorKind::TooDeep,
                &token,
                format!(
                    "this opens level {} of parentheses, `not` and `where`; the limit is {} — flatten the rule (`not not x` is `x`, `((a))` is `a`)",
                    limits::MAX_RULE_DEPTH + 1,
                    limits::MAX_RULE_DEPTH
                ),
            ));
        }
        self.nesting += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Rejects a node whose tree is deeper than the limit, pointing at where it starts.
    fn check_depth(&self, rule: Rule, start: &Token) -> Parsed<Rule> {
        let depth = rule.depth();
        if depth > limits::MAX_RULE_DEPTH {
            return Err(self.error_at(
                ParseErrorKind::TooDeep,
                start,
                format!(
                    "the condition starting here nests {depth} levels deep (each and/or group, `not` and condition with a `where` filter is a level); the limit is {} — flatten it",
                    limits::MAX_RULE_DEPTH
                ),
            ));
        }
        Ok(rule)
    }

    fn rule(&mut self) -> Parsed<Rule> {
        let start = self.peek();
        let first = self.and_expression()?;
        if !self.at_keyword(Keyword::Or) {
            return Ok(first);
        }
        let mut rules = vec![first];
        while self.eat_keyword(Keyword::Or) {
            rules.push(self.and_expression()?);
        }
        self.check_depth(Rule::Or { rules }, &start)
    }

    fn and_expression(&mut self) -> Parsed<Rule> {
        let start = self.peek();
        let first = self.unary()?;
        if !self.at_keyword(Keyword::And) {
            return Ok(first);
        }
        let mut rules = vec![first];
        while self.eat_keyword(Keyword::And) {
            rules.push(self.unary()?);
        }
        self.check_depth(Rule::And { rules }, &start)
    }

    fn unary(&mut self) -> Parsed<Rule> {
        let start = self.peek();
        if self.at_keyword(Keyword::Not) {
            self.enter()?;
            self.advance();
            let inner = self.unary();
            self.leave();
            return self.check_depth(
                Rule::Not {
                    rule: Box::new(inner?),
                },
                &start,
            );
        }
        if self.at_symbol(Symbol::OpenParen) {
            self.enter()?;
            self.advance();
            let inner = self.parenthesized_rest();
            self.leave();
            return inner;
        }
        let group_keyword = match self.peek_kind() {
            TokenKind::Keyword(keyword @ (Keyword::And | Keyword::Or)) => Some(*keyword),
            _ => None,
        };
        if let Some(keyword) = group_keyword {
            if *self.peek_second_kind() != TokenKind::Symbol(Symbol::OpenParen) {
                return Err(self.error_here(format!(
                    "expected a condition, found keyword `{keyword}`; remove the doubled `{keyword}`, or write a group like {keyword}(a, b)"
                )));
            }
            self.advance();
            self.enter()?;
            self.advance();
            let rules = self.group_rest();
            self.leave();
            let rules = rules?;
            let rule = if keyword == Keyword::And {
                Rule::And { rules }
            } else {
                Rule::Or { rules }
            };
            return self.check_depth(rule, &start);
        }
        self.condition()
    }

    /// After "(": a rule and the closing ")".
    fn parenthesized_rest(&mut self) -> Parsed<Rule> {
        if self.at_symbol(Symbol::CloseParen) {
            return Err(self.error_here(
                "empty parentheses; put a condition inside, or write and() for an empty group"
                    .into(),
            ));
        }
        let rule = self.rule()?;
        let hint = continuation_hint(self.peek_kind())
            .unwrap_or("close the group opened by \"(\", or join conditions with `and` or `or`");
        self.expect_symbol(Symbol::CloseParen, hint)?;
        Ok(rule)
    }

    /// After "and(" / "or(": comma-separated rules and the closing ")".
    fn group_rest(&mut self) -> Parsed<Vec<Rule>> {
        let mut rules = Vec::new();
        while !self.eat_symbol(Symbol::CloseParen) {
            rules.push(self.rule()?);
            if !self.eat_symbol(Symbol::Comma) {
                self.expect_symbol(
                    Symbol::CloseParen,
                    "separate the rules of a group with \",\" and close it with \")\"",
                )?;
                break;
            }
        }
        Ok(rules)
    }

    fn condition(&mut self) -> Parsed<Rule> {
        let start = self.peek();
        match start.kind.clone() {
            TokenKind::Keyword(Keyword::Has) => {
                self.advance();
                let trait_name = self.identifier("a trait name after `has`", "e.g. has phone")?;
                Ok(Rule::Has { trait_name })
            }
            TokenKind::Keyword(Keyword::In) => {
                self.advance();
                self.expect_keyword(
                    Keyword::Segment,
                    "a segment reference is written in segment \"name\"",
                )?;
                let segment =
                    self.string("a segment name in quotes", "e.g. in segment \"vip\"")?;
                Ok(Rule::InSegment { segment })
            }
            TokenKind::Keyword(Keyword::Random) => {
                self.advance();
                self.random_bucket()
            }
            TokenKind::Keyword(Keyword::Did) => {
                self.advance();
                self.event_count(&start)
            }
            TokenKind::Keyword(which @ (Keyword::First | Keyword::Last)) => {
                self.advance();
                let event = self.string(
                    &format!("an event name in quotes after `{which}`"),
                    &format!(
                        "e.g. {which} \"email_opened\" more than 60 days ago; a trait named `{which}` is written in back-quotes"
                    ),
                )?;
                let (recency, span) = self.recency(&format!("after {which} \"{event}\""))?;
                Ok(Rule::Performed {
                    event,
                    which: if which == Keyword::First {
                        Performed::First
                    } else {
                        Performed::Last
                    },
                    recency,
                    span,
                })
            }
            TokenKind::Keyword(name @ (Keyword::Sum | Keyword::Avg | Keyword::Min | Keyword::Max | Keyword::Count)) => {
                self.advance();
                let function = match name {
                    Keyword::Sum => AggregateFunction::Sum,
                    Keyword::Avg => AggregateFunction::Avg,
                    Keyword::Min => AggregateFunction::Min,
                    Keyword::Max => AggregateFunction::Max,
                    _ => {
                        self.expect_keyword(
                            Keyword::Distinct,
                            "the aggregate is written count distinct of \"event\".property; to count events write did \"event\" at least N times",
                        )?;
                        AggregateFunction::CountDistinct
                    }
                };
                self.aggregate(function, &start)
            }
            TokenKind::Identifier { name, .. } => {
                self.advance();
                self.trait_condition(name)
            }
            TokenKind::Keyword(keyword) => Err(self.error_here(format!(
                "expected a condition, found keyword `{keyword}`; a trait named `{keyword}` is written in back-quotes"
            ))),
            TokenKind::String(_) => Err(self.expected(
                "a condition",
                "a condition starts with a trait name (not quoted), e.g. city = \"Berlin\"; events are written did \"order_completed\"",
            )),
            TokenKind::End => Err(self.expected(
                "a condition",
                "the rule ends too early; add a condition such as country = \"DE\"",
            )),
            _ => Err(self.expected(
                "a condition",
                "e.g. country = \"DE\", has phone, did \"app_opened\" in last 7 days",
            )),
        }
    }

    fn trait_condition(&mut self, trait_name: String) -> Parsed<Rule> {
        let after = format!("after `{trait_name}`");
        if let Some((op, text)) = self.compare_op_here() {
            self.advance();
            let value = self.literal(text)?;
            return Ok(Rule::Compare {
                trait_name,
                op,
                value,
            });
        }
        match self.peek_kind().clone() {
            TokenKind::Keyword(Keyword::Between) => {
                self.advance();
                let low = self.literal("between")?;
                self.expect_keyword(Keyword::And, "a range is written age between 25 and 40")?;
                let high = self.literal("and")?;
                Ok(Rule::Between {
                    trait_name,
                    low,
                    high,
                })
            }
            TokenKind::Keyword(Keyword::Not) => {
                self.advance();
                self.expect_keyword(
                    Keyword::In,
                    &format!(
                        "`not` after a trait name starts `not in (...)`; to negate a condition put `not` first: not {trait_name} = ..."
                    ),
                )?;
                let values = self.literal_list()?;
                Ok(Rule::In {
                    trait_name,
                    values,
                    negated: true,
                })
            }
            // `flag in last 30 days` is a boolean filter followed by a window.
            TokenKind::Keyword(Keyword::In) if !matches!(self.peek_second_kind(), TokenKind::Keyword(Keyword::Last)) => {
                self.advance();
                let values = self.literal_list()?;
                Ok(Rule::In {
                    trait_name,
                    values,
                    negated: false,
                })
            }
            TokenKind::Keyword(word @ (Keyword::Contains | Keyword::StartsWith | Keyword::EndsWith)) => {
                self.advance();
                let value = self.string(
                    &format!("a quoted text after `{word}`"),
                    &format!("e.g. {trait_name} {word} \"vip\""),
                )?;
                let op = match word {
                    Keyword::Contains => TextOp::Contains,
                    Keyword::StartsWith => TextOp::StartsWith,
                    _ => TextOp::EndsWith,
                };
                Ok(Rule::Text {
                    trait_name,
                    op,
                    value,
                })
            }
            TokenKind::Keyword(Keyword::Exists) => {
                self.advance();
                Ok(Rule::Has { trait_name })
            }
            TokenKind::Keyword(Keyword::Within | Keyword::More | Keyword::Less) => {
                let (recency, span) = self.recency(&after)?;
                Ok(Rule::Recent {
                    trait_name,
                    recency,
                    span,
                })
            }
            TokenKind::String(_)
            | TokenKind::Integer(_)
            | TokenKind::Float(_)
            | TokenKind::Identifier { .. }
            | TokenKind::Keyword(Keyword::True | Keyword::False) => Err(self.expected(
                &format!("an operator {after}"),
                &format!(
                    "compare with =, !=, <, <=, >, >=, between, in, contains, starts_with or ends_with, e.g. {trait_name} = \"Berlin\""
                ),
            )),
            // Anything else ends a bare boolean condition; the caller checks what follows.
            _ => Ok(Rule::Compare {
                trait_name,
                op: CompareOp::Eq,
                value: Literal::Bool(true),
            }),
        }
    }

    fn identifier(&mut self, what: &str, hint: &str) -> Parsed<String> {
        if let TokenKind::Identifier { name, .. } = self.peek_kind().clone() {
            self.advance();
            return Ok(name);
        }
        let hint = match self.peek_kind() {
            TokenKind::Keyword(keyword) => {
                format!("a name spelled like the keyword `{keyword}` is written in back-quotes: `{keyword}`")
            }
            TokenKind::String(_) => {
                "names are not quoted (use back-quotes for unusual names: `first name`)".into()
            }
            _ => hint.to_string(),
        };
        Err(self.expected(what, &hint))
    }

    fn string(&mut self, what: &str, hint: &str) -> Parsed<String> {
        if let TokenKind::String(text) = self.peek_kind().clone() {
            self.advance();
            return Ok(text);
        }
        Err(self.expected(what, hint))
    }

    fn literal(&mut self, after: &str) -> Parsed<Literal> {
        let literal =
            match self.peek_kind().clone() {
                TokenKind::String(text) => Literal::String(text),
                TokenKind::Integer(value) => Literal::Integer(value),
                TokenKind::Float(value) => Literal::Float(value),
                TokenKind::Keyword(Keyword::True) => Literal::Bool(true),
                TokenKind::Keyword(Keyword::False) => Literal::Bool(false),
                TokenKind::Identifier {
                    name,
                    quoted: false,
                } if ["nan", "inf", "infinity"]
                    .iter()
                    .any(|word| word.eq_ignore_ascii_case(&name)) =>
                {
                    return Err(
                        self.error_here(format!("`{name}` is not allowed; numbers must be finite"))
                    )
                }
                _ => return Err(self.expected(
                    &format!("a value after \"{after}\""),
                    "string values are quoted: city = \"Berlin\"; numbers and true/false are not",
                )),
            };
        self.advance();
        Ok(literal)
    }

    fn literal_list(&mut self) -> Parsed<Vec<Literal>> {
        self.expect_symbol(
            Symbol::OpenParen,
            "list values go in parentheses: status in (\"subscribed\", \"unconfirmed\")",
        )?;
        let mut values = Vec::new();
        while !self.eat_symbol(Symbol::CloseParen) {
            if values.len() == limits::MAX_LIST_LENGTH {
                let token = self.peek();
                return Err(self.error_at(
                    ParseErrorKind::ListTooLong,
                    &token,
                    format!(
                        "`in` list has more than {} values; split it into several conditions joined with `or`, or use a static segment",
                        limits::MAX_LIST_LENGTH
                    ),
                ));
            }
            let after = if values.is_empty() { "(" } else { "," };
            values.push(self.literal(after)?);
            if !self.eat_symbol(Symbol::Comma) {
                self.expect_symbol(
                    Symbol::CloseParen,
                    "separate list values with \",\" and close the list with \")\"",
                )?;
                break;
            }
        }
        Ok(values)
    }

    fn whole_number(&mut self, what: &str, hint: &str) -> Parsed<u32> {
        if let TokenKind::Integer(value) = *self.peek_kind() {
            if let Ok(value) = u32::try_from(value) {
                self.advance();
                return Ok(value);
            }
            return Err(self.error_here(format!(
                "{what} must be a whole number from 0 to {}, found {value}",
                u32::MAX
            )));
        }
        Err(self.expected(what, hint))
    }

    fn number(&mut self, what: &str, hint: &str) -> Parsed<f64> {
        let value = match *self.peek_kind() {
            // Integers are taken as the nearest float (exact up to 2^53).
            TokenKind::Integer(value) => value as f64,
            TokenKind::Float(value) => value,
            _ => return Err(self.expected(what, hint)),
        };
        self.advance();
        Ok(value)
    }

    fn span(&mut self, after: &str) -> Parsed<Span> {
        let amount = self.whole_number(
            &format!("a number of minutes, hours or days {after}"),
            "e.g. 30 days",
        )?;
        let unit = match self.peek_kind() {
            TokenKind::Keyword(Keyword::Minute | Keyword::Minutes) => TimeUnit::Minutes,
            TokenKind::Keyword(Keyword::Hour | Keyword::Hours) => TimeUnit::Hours,
            TokenKind::Keyword(Keyword::Day | Keyword::Days) => TimeUnit::Days,
            _ => {
                return Err(self.expected(
                    &format!("a time unit after {amount}"),
                    "units are minutes, hours or days (weeks: write 7 days)",
                ))
            }
        };
        self.advance();
        Ok(Span { amount, unit })
    }

    fn recency(&mut self, after: &str) -> Parsed<(Recency, Span)> {
        let hint = "write within last N days, within next N days, more than N days ago or less than N days ago";
        match self.peek_kind() {
            TokenKind::Keyword(Keyword::Within) => {
                self.advance();
                let recency = if self.eat_keyword(Keyword::Last) {
                    Recency::WithinLast
                } else if self.eat_keyword(Keyword::Next) {
                    Recency::WithinNext
                } else {
                    return Err(self.expected("`last` or `next` after `within`", hint));
                };
                let span = self.span("after `within`")?;
                Ok((recency, span))
            }
            TokenKind::Keyword(word @ (Keyword::More | Keyword::Less)) => {
                let recency = if *word == Keyword::More {
                    Recency::MoreThanAgo
                } else {
                    Recency::LessThanAgo
                };
                self.advance();
                self.expect_keyword(Keyword::Than, hint)?;
                let span = self.span("after `than`")?;
                self.expect_keyword(Keyword::Ago, hint)?;
                Ok((recency, span))
            }
            _ => Err(self.expected(&format!("a relative time {after}"), hint)),
        }
    }

    fn random_bucket(&mut self) -> Parsed<Rule> {
        let hint = "e.g. random bucket 10%";
        self.expect_keyword(Keyword::Bucket, hint)?;
        let percent = self.number("a percentage after `bucket`", hint)?;
        self.expect_symbol(Symbol::Percent, hint)?;
        let salt = if self.eat_keyword(Keyword::Salt) {
            Some(self.string("a quoted salt after `salt`", "e.g. salt \"spring_test\"")?)
        } else {
            None
        };
        Ok(Rule::RandomBucket { percent, salt })
    }

    /// `where` filter: one unary, counted as one nesting level (`where (...)` too).
    fn filter(&mut self) -> Parsed<Box<Rule>> {
        self.enter()?;
        self.advance();
        let filter = if self.at_symbol(Symbol::OpenParen) {
            self.advance();
            self.parenthesized_rest()
        } else {
            self.unary()
        };
        self.leave();
        Ok(Box::new(filter?))
    }

    fn window(&mut self) -> Parsed<Window> {
        if self.eat_keyword(Keyword::In) {
            self.expect_keyword(Keyword::Last, "a window is written in last 30 days")?;
            let span = self.span("after `in last`")?;
            return Ok(Window::Last { span });
        }
        self.expect_keyword(
            Keyword::Between,
            "a window is written in last 30 days or between \"2024-01-01\" and \"2024-02-01\"",
        )?;
        let hint = "e.g. between \"2024-01-01\" and \"2024-02-01T00:00:00Z\"";
        let from = self.string("a quoted start time after `between`", hint)?;
        self.expect_keyword(Keyword::And, hint)?;
        let to = self.string("a quoted end time after `and`", hint)?;
        Ok(Window::Between { from, to })
    }

    /// After an event clause nothing else can start with `in` or `between`, so either
    /// starts a window (and a misspelt one gets the window's error message).
    fn at_window(&self) -> bool {
        self.at_keyword(Keyword::Between) || self.at_keyword(Keyword::In)
    }

    fn duplicate(&self, what: &str, owner: &str) -> ParseError {
        self.error_here(format!("{owner} already has {what}; give it only once"))
    }

    fn event_count(&mut self, start: &Token) -> Parsed<Rule> {
        let negated = self.eat_keyword(Keyword::Not);
        let event = self.string(
            "an event name in quotes after `did`",
            "e.g. did \"order_completed\" at least 3 times in last 30 days",
        )?;
        let owner = format!("did \"{event}\"");
        let mut filter = None;
        let mut count = None;
        let mut window = None;
        loop {
            if self.at_keyword(Keyword::Where) {
                if filter.is_some() {
                    return Err(self.duplicate("a `where` filter", &owner));
                }
                filter = Some(self.filter()?);
            } else if self.at_window() {
                if window.is_some() {
                    return Err(self.duplicate("a window", &owner));
                }
                window = Some(self.window()?);
            } else if self.at_keyword(Keyword::At) || self.at_keyword(Keyword::Exactly) {
                if negated {
                    return Err(self.error_here(format!(
                        "`did not` means zero times and takes no count; write did \"{event}\" at most N times instead"
                    )));
                }
                if count.is_some() {
                    return Err(self.duplicate("a count", &owner));
                }
                count = Some(self.count()?);
            } else {
                break;
            }
        }
        let (count_op, count) = if negated {
            (CountOp::Exactly, 0)
        } else {
            count.unwrap_or((CountOp::AtLeast, 1))
        };
        let rule = Rule::EventCount {
            event,
            filter,
            count_op,
            count,
            window: window.unwrap_or(Window::Lifetime),
        };
        self.check_depth(rule, start)
    }

    fn count(&mut self) -> Parsed<(CountOp, u32)> {
        let hint = "a count is written at least 3 times, at most 2 times or exactly 1 time";
        let count_op = if self.eat_keyword(Keyword::Exactly) {
            CountOp::Exactly
        } else {
            self.expect_keyword(Keyword::At, hint)?;
            if self.eat_keyword(Keyword::Least) {
                CountOp::AtLeast
            } else if self.eat_keyword(Keyword::Most) {
                CountOp::AtMost
            } else {
                return Err(self.expected("`least` or `most` after `at`", hint));
            }
        };
        let count = self.whole_number("a number of times", hint)?;
        if !(self.eat_keyword(Keyword::Times) || self.eat_keyword(Keyword::Time)) {
            return Err(self.expected(&format!("`times` after {count}"), hint));
        }
        Ok((count_op, count))
    }

    fn aggregate(&mut self, function: AggregateFunction, start: &Token) -> Parsed<Rule> {
        let hint = "e.g. sum of \"order_completed\".amount in last 90 days >= 500";
        self.expect_keyword(Keyword::Of, hint)?;
        let event = self.string("an event name in quotes after `of`", hint)?;
        self.expect_symbol(Symbol::Dot, hint)?;
        let property = self.identifier("an event property name after \".\"", hint)?;
        let owner = format!("the aggregate of \"{event}\".{property}");
        let mut filter = None;
        let mut window = None;
        loop {
            if self.at_keyword(Keyword::Where) {
                if filter.is_some() {
                    return Err(self.duplicate("a `where` filter", &owner));
                }
                filter = Some(self.filter()?);
            } else if self.at_window() {
                if window.is_some() {
                    return Err(self.duplicate("a window", &owner));
                }
                window = Some(self.window()?);
            } else {
                break;
            }
        }
        let Some((op, _)) = self.compare_op_here() else {
            return Err(self.expected("a comparison (=, !=, <, <=, >, >=) for the aggregate", hint));
        };
        self.advance();
        let value = self.number("a number to compare the aggregate with", hint)?;
        let rule = Rule::Aggregate {
            function,
            event,
            property,
            filter,
            window: window.unwrap_or(Window::Lifetime),
            op,
            value,
        };
        self.check_depth(rule, start)
    }
}

/// The canonical form rules are stored in (see the module doc): `and`/`or` of one rule
/// become that rule, recursively; nothing else changes.
pub fn normalize(rule: Rule) -> Rule {
    match rule {
        Rule::And { rules } => normalize_group(rules, |rules| Rule::And { rules }),
        Rule::Or { rules } => normalize_group(rules, |rules| Rule::Or { rules }),
        Rule::Not { rule } => Rule::Not {
            rule: Box::new(normalize(*rule)),
        },
        Rule::EventCount {
            event,
            filter,
            count_op,
            count,
            window,
        } => Rule::EventCount {
            event,
            filter: filter.map(|filter| Box::new(normalize(*filter))),
            count_op,
            count,
            window,
        },
        Rule::Aggregate {
            function,
            event,
            property,
            filter,
            window,
            op,
            value,
        } => Rule::Aggregate {
            function,
            event,
            property,
            filter: filter.map(|filter| Box::new(normalize(*filter))),
            window,
            op,
            value,
        },
        leaf => leaf,
    }
}

fn normalize_group(mut rules: Vec<Rule>, make: fn(Vec<Rule>) -> Rule) -> Rule {
    if rules.len() == 1 {
        if let Some(only) = rules.pop() {
            return normalize(only);
        }
    }
    make(rules.into_iter().map(normalize).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Far past the text limit, nesting still stops at the depth limit instead of
    // recursing: no stack overflow on 100,000 open parentheses, `not`s or filters.
    #[test]
    fn nesting_of_any_length_stops_at_the_depth_limit() {
        let count = 100_000;
        let inputs = [
            format!("{}a{}", "(".repeat(count), ")".repeat(count)),
            "(".repeat(count),
            format!("{}a", "not ".repeat(count)),
            format!("{}a", "did \"e\" where ".repeat(count)),
            format!("{}a", "and(".repeat(count)),
            format!("{}a", "sum of \"e\".p where ".repeat(count)),
        ];
        for input in &inputs {
            assert!(input.len() > limits::MAX_RULE_TEXT_BYTES);
            let error = parse_any_length(input).unwrap_err();
            assert_eq!(error.kind(), ParseErrorKind::TooDeep, "{error}");
            assert_eq!(
                parse_rule(input).unwrap_err().kind(),
                ParseErrorKind::TooLong
            );
        }
    }

    #[test]
    fn bare_identifiers() {
        for name in ["a", "_x", "a.b", "in.last", "a.0.b", "Country_2"] {
            assert!(is_bare_identifier(name), "{name}");
        }
        for name in [
            "", "in", "LAST", "2fa", "a.", ".a", "a..b", "a b", "é", "a-b",
        ] {
            assert!(!is_bare_identifier(name), "{name}");
        }
    }
}
