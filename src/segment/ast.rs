//! The one rule AST. Both the JSON form (serde) and the text syntax (`parser`) produce
//! it, and `printer` turns any AST back into text that re-parses to the same AST.
//!
//! JSON shape: every node is an object with a `"kind"` tag, e.g.
//! `{"kind": "compare", "trait": "age", "op": ">=", "value": 25}`.

use serde::{Deserialize, Serialize};

/// A literal value in a rule. JSON numbers without a fraction are integers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Integer(i64),
    Float(f64),
    /// Strings; a string that is a valid RFC 3339 time compares as a time against
    /// timestamp traits.
    String(String),
}

/// Comparison operators for `trait <op> literal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    NotEq,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
}

/// Text matching operators. `contains` on a list trait means "the list holds this item";
/// on a string trait it means substring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// Units for relative time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    pub fn millis(self) -> i64 {
        match self {
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        }
    }
}

/// A relative span such as "30 days".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub amount: u32,
    pub unit: TimeUnit,
}

impl Span {
    pub fn millis(self) -> i64 {
        i64::from(self.amount) * self.unit.millis()
    }
}

/// Relative-time test on a timestamp trait or on a first/last performed time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recency {
    /// `within last N days`: now - N <= t <= now.
    WithinLast,
    /// `more than N days ago`: t < now - N.
    MoreThanAgo,
    /// `less than N days ago`: now - N < t (includes future times).
    LessThanAgo,
    /// `within next N days`: now <= t <= now + N.
    WithinNext,
}

/// The window over which behavioral conditions look at events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Window {
    /// Every event ever seen (lifetime aggregates; only count/did/first/last without a
    /// property filter can use it, because older events are dropped after retention).
    Lifetime,
    /// `in last N days`: now - N <= event time <= now.
    Last { span: Span },
    /// `between "t1" and "t2"`: absolute range, inclusive, RFC 3339 in text and JSON.
    Between { from: String, to: String },
}

/// How an event count is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountOp {
    AtLeast,
    AtMost,
    Exactly,
}

/// Which end of a profile's history `first`/`last` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Performed {
    First,
    Last,
}

/// Windowed aggregate functions over an event property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
}

/// One rule node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    And {
        rules: Vec<Rule>,
    },
    Or {
        rules: Vec<Rule>,
    },
    Not {
        rule: Box<Rule>,
    },
    /// `trait <op> value`.
    Compare {
        #[serde(rename = "trait")]
        trait_name: String,
        op: CompareOp,
        value: Literal,
    },
    /// `trait between low and high` (inclusive).
    Between {
        #[serde(rename = "trait")]
        trait_name: String,
        low: Literal,
        high: Literal,
    },
    /// `trait in (a, b)` / `trait not in (a, b)`.
    In {
        #[serde(rename = "trait")]
        trait_name: String,
        values: Vec<Literal>,
        #[serde(default)]
        negated: bool,
    },
    /// `trait contains "x"`, `trait starts_with "x"`, `trait ends_with "x"`.
    Text {
        #[serde(rename = "trait")]
        trait_name: String,
        op: TextOp,
        value: String,
    },
    /// `has trait`: the profile holds a value for the trait.
    Has {
        #[serde(rename = "trait")]
        trait_name: String,
    },
    /// `trait within last 30 days`, `trait more than 60 days ago`, ...
    Recent {
        #[serde(rename = "trait")]
        trait_name: String,
        recency: Recency,
        span: Span,
    },
    /// `in segment "name"`.
    InSegment {
        segment: String,
    },
    /// `random bucket 10%`: a stable pseudo-random share of profiles, salted per
    /// segment (or by `salt` when given). `percent` is 0..=100 with at most two decimals.
    RandomBucket {
        percent: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        salt: Option<String>,
    },
    /// `did "e" [where ...] [at least|at most|exactly N times] [in last N days]`;
    /// `did not "e" ...` is `exactly 0`.
    EventCount {
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none", rename = "where")]
        filter: Option<Box<Rule>>,
        count_op: CountOp,
        count: u32,
        window: Window,
    },
    /// `last "e" more than 60 days ago`, `first "e" within last 7 days`.
    Performed {
        event: String,
        which: Performed,
        recency: Recency,
        span: Span,
    },
    /// `sum of "order_completed".amount [where ...] in last 90 days >= 500`.
    Aggregate {
        function: AggregateFunction,
        event: String,
        property: String,
        #[serde(default, skip_serializing_if = "Option::is_none", rename = "where")]
        filter: Option<Box<Rule>>,
        window: Window,
        op: CompareOp,
        value: f64,
    },
}

impl Rule {
    /// Depth of the tree (a leaf is 1).
    pub fn depth(&self) -> usize {
        match self {
            Rule::And { rules } | Rule::Or { rules } => {
                1 + rules.iter().map(Rule::depth).max().unwrap_or(0)
            }
            Rule::Not { rule } => 1 + rule.depth(),
            Rule::EventCount { filter, .. } | Rule::Aggregate { filter, .. } => {
                1 + filter.as_ref().map_or(0, |f| f.depth())
            }
            _ => 1,
        }
    }

    /// Visits every node, parents before children. Property filters inside behavioral
    /// conditions are not visited: their names are event properties, not traits.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Rule)) {
        visit(self);
        match self {
            Rule::And { rules } | Rule::Or { rules } => rules.iter().for_each(|r| r.walk(visit)),
            Rule::Not { rule } => rule.walk(visit),
            _ => {}
        }
    }
}
