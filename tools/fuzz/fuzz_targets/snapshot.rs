//! Snapshot decoding (manifest, then shard 0 under an empty schema) on arbitrary
//! bytes: must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = segd::persist::snapshot::decode_untrusted(bytes, None);
});
