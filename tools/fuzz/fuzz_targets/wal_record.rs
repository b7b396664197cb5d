//! WAL segment scanning and record decoding on arbitrary bytes: must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use segd::persist::record::WalRecord;
use segd::persist::wal::scan_segment;

fuzz_target!(|bytes: &[u8]| {
    let scan = scan_segment(bytes);
    for batch in &scan.batches {
        for item in &batch.items {
            let _ = WalRecord::decode(item);
        }
    }
    let _ = WalRecord::decode(bytes);
});
