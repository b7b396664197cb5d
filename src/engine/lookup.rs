//! The lookup hot path (trigger systems call it on every send): no heap allocation, one
//! registry read, one shard read.
//!
//! Identity keys are hashed from a stack buffer (`u:`/`a:` prefix + the id), and JSON
//! answers are written straight into the caller's buffer.

use super::*;

/// Ids up to this many bytes are hashed from a stack buffer; longer ones allocate.
const STACK_KEY_BYTES: usize = 256;

/// `identity_hash(&identity_key_for_external(external))` without building the key.
pub fn external_identity_hash(external: &str) -> u128 {
    let (prefix, rest) = match external.strip_prefix("anon:") {
        Some(anonymous) => (b"a:", anonymous),
        None => (b"u:", external),
    };
    if rest.len() + 2 > STACK_KEY_BYTES {
        return identity_hash(&identity_key_for_external(external));
    }
    let mut key = [0u8; STACK_KEY_BYTES];
    key[..2].copy_from_slice(prefix);
    key[2..2 + rest.len()].copy_from_slice(rest.as_bytes());
    xxhash_rust::xxh3::xxh3_128(&key[..2 + rest.len()])
}

/// Writes `text` as a JSON string (quoted, escaped) into `out`.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Writes a decimal number into `out` without a temporary string.
pub fn write_number(out: &mut Vec<u8>, number: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

thread_local! {
    /// Segment ids of one profile, reused across lookups on this thread.
    static HELD: std::cell::RefCell<Vec<SegmentId>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Engine {
    /// Is `profile` in the segment named or numbered `segment`? One registry read (the
    /// id), one shard read; `None` when no such segment. Unknown profiles are not members.
    pub fn lookup_member(&self, segment: &str, profile: &str) -> Option<(SegmentId, bool)> {
        let id = self.segment_id(segment)?;
        let member = match self.resolve(profile) {
            Some(reference) => self.shards[reference.shard.0 as usize]
                .read()
                .is_member(id, reference.local),
            None => false,
        };
        Some((id, member))
    }

    /// Is `profile` in the already-resolved segment `id`? (bulk checks resolve each
    /// segment once per request).
    pub fn member_by_id(&self, id: SegmentId, profile: &str) -> bool {
        self.resolve(profile).is_some_and(|reference| {
            self.shards[reference.shard.0 as usize]
                .read()
                .is_member(id, reference.local)
        })
    }

    /// Writes `[{"id":…,"name":…},…]` for the profile's segments (ascending ids) into
    /// `out`: one shard read for the ids, one registry read for the names. `false` when
    /// the profile is unknown (nothing written).
    pub fn write_segments_of_json(&self, profile: &str, out: &mut Vec<u8>) -> bool {
        let Some(reference) = self.resolve(profile) else {
            return false;
        };
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            self.segments_of_profile(reference, &mut held);
            held.sort_unstable();
            out.push(b'[');
            let registry = self.registry.read();
            let mut first = true;
            for id in held.iter() {
                // Ids no longer defined (deleted meanwhile) are skipped.
                let Some(definition) = registry.get(*id) else {
                    continue;
                };
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(b"{\"id\":");
                write_number(out, u64::from(id.0));
                out.extend_from_slice(b",\"name\":");
                write_json_string(out, &definition.name);
                out.push(b'}');
            }
            out.push(b']');
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_hash_equals_the_built_key_hash() {
        let long = "x".repeat(STACK_KEY_BYTES + 10);
        let long_anonymous = format!("anon:{long}");
        for external in [
            "",
            "u1",
            "anon:dev-1",
            "anon:",
            "user with spaces ü",
            &long,
            &long_anonymous,
            &"y".repeat(STACK_KEY_BYTES - 2),
            &"z".repeat(STACK_KEY_BYTES - 1),
        ] {
            assert_eq!(
                external_identity_hash(external),
                identity_hash(&identity_key_for_external(external)),
                "{external}"
            );
        }
    }

    #[test]
    fn numbers_and_strings_as_json() {
        let mut out = Vec::new();
        for number in [0, 7, 10, 4_294_967_295, u64::MAX] {
            out.clear();
            write_number(&mut out, number);
            assert_eq!(out, number.to_string().as_bytes());
        }
        out.clear();
        write_json_string(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(
            serde_json::from_slice::<String>(&out).unwrap(),
            "a\"b\\c\n\u{1}é"
        );
    }
}
