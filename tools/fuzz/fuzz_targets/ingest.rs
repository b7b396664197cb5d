//! The ingest body parser (batch and single message): must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = segd::ingest::body::parse_batch_body(bytes);
    let _ = segd::ingest::body::parse_message_body(bytes, "identify");
});
