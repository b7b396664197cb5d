//! The rule parser (text) and the JSON AST (deserialized and normalized): must never
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use segd::engine::RuleInput;
use segd::segment::ast::Rule;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = segd::segment::parser::parse_rule(text);
    }
    if let Ok(rule) = serde_json::from_slice::<Rule>(bytes) {
        let _ = RuleInput::Ast(rule).into_rule();
    }
});
