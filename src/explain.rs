//! Explain: why a profile is or is not in a segment, condition by condition.
//!
//! Every node of the segment's rule is evaluated for the profile on its own (leaves with
//! the per-profile evaluator, `and`/`or`/`not` from their children), and each leaf that
//! reads a trait carries the value the profile holds, so a marketer sees which condition
//! failed and on what value.

use crate::engine::{Engine, EngineError};
use crate::ids::SegmentId;
use crate::segment::ast::Rule;
use crate::segment::printer::print_rule;
use serde::Serialize;
use serde_json::Value;

/// One evaluated rule node.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(no_recursion)]
pub struct ExplainedCondition {
    /// The node as rule text.
    pub rule: String,
    /// Whether it holds for the profile now.
    pub result: bool,
    /// The trait this leaf reads and the value the profile holds (null when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trait_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The event this leaf reads, with the profile's summary of it (null when never seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_summary: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ExplainedCondition>,
}

/// The whole explanation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub segment_id: SegmentId,
    pub segment: String,
    pub version: u32,
    pub profile: String,
    /// Stored membership (what lookups answer).
    pub member: bool,
    #[serde(rename = "static")]
    pub is_static: bool,
    /// The rule evaluated now (absent for static segments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluated: Option<ExplainedCondition>,
}

impl Engine {
    /// Explains the membership of `external_id` in segment `id`.
    pub fn explain(&self, id: SegmentId, external_id: &str) -> Result<Explanation, EngineError> {
        let definition = self
            .segment(id)
            .ok_or_else(|| EngineError::SegmentNotFound(id.to_string()))?;
        let card = self.profile_card(external_id, 0)?;
        let member = self.is_member(id, external_id)?;
        let evaluated = match definition.rule() {
            Some(rule) => Some(self.explain_node(rule, external_id, &card)?),
            None => None,
        };
        Ok(Explanation {
            segment_id: id,
            segment: definition.name.clone(),
            version: definition.version,
            profile: card.id.clone(),
            member,
            is_static: definition.is_static(),
            evaluated,
        })
    }

    fn explain_node(
        &self,
        rule: &Rule,
        external_id: &str,
        card: &crate::engine::ProfileCard,
    ) -> Result<ExplainedCondition, EngineError> {
        let mut node = ExplainedCondition {
            rule: print_rule(rule),
            result: false,
            trait_name: None,
            value: None,
            event: None,
            event_summary: None,
            conditions: Vec::new(),
        };
        match rule {
            Rule::And { rules } | Rule::Or { rules } => {
                for child in rules {
                    node.conditions
                        .push(self.explain_node(child, external_id, card)?);
                }
                node.result = if matches!(rule, Rule::And { .. }) {
                    node.conditions.iter().all(|child| child.result)
                } else {
                    node.conditions.iter().any(|child| child.result)
                };
            }
            Rule::Not { rule: inner } => {
                let child = self.explain_node(inner, external_id, card)?;
                node.result = !child.result;
                node.conditions.push(child);
            }
            leaf => {
                node.result = self.profile_matches(leaf, external_id)?;
                match leaf {
                    Rule::Compare { trait_name, .. }
                    | Rule::Between { trait_name, .. }
                    | Rule::In { trait_name, .. }
                    | Rule::Text { trait_name, .. }
                    | Rule::Has { trait_name }
                    | Rule::Recent { trait_name, .. } => {
                        node.value =
                            Some(card.traits.get(trait_name).cloned().unwrap_or(Value::Null));
                        node.trait_name = Some(trait_name.clone());
                    }
                    Rule::EventCount { event, .. }
                    | Rule::Performed { event, .. }
                    | Rule::Aggregate { event, .. } => {
                        node.event_summary = Some(
                            card.events
                                .iter()
                                .find(|summary| &summary.event == event)
                                .and_then(|summary| serde_json::to_value(summary).ok())
                                .unwrap_or(Value::Null),
                        );
                        node.event = Some(event.clone());
                    }
                    _ => {}
                }
            }
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineOptions, RuleInput};
    use serde_json::json;

    #[test]
    fn explains_each_condition_with_values() {
        let engine = Engine::new(EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        });
        let traits = json!({"country": "DE", "age": 20});
        engine
            .identify(Some("u1"), None, traits.as_object().unwrap())
            .unwrap();
        let rule: Rule = serde_json::from_value(json!({"kind": "and", "rules": [
            {"kind": "compare", "trait": "country", "op": "=", "value": "DE"},
            {"kind": "compare", "trait": "age", "op": ">=", "value": 25}
        ]}))
        .unwrap();
        let summary = engine
            .create_segment("adults_de", "", Some(RuleInput::Ast(rule)))
            .unwrap();
        let explanation = engine.explain(summary.id, "u1").unwrap();
        assert!(!explanation.member);
        let evaluated = explanation.evaluated.unwrap();
        assert!(!evaluated.result);
        assert!(evaluated.conditions[0].result);
        assert_eq!(evaluated.conditions[0].value, Some(json!("DE")));
        assert!(!evaluated.conditions[1].result);
        assert_eq!(evaluated.conditions[1].value, Some(json!(20)));
        assert!(matches!(
            engine.explain(summary.id, "nobody"),
            Err(EngineError::ProfileNotFound(_))
        ));
    }
}
