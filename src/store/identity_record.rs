//! The identifiers one profile holds, packed into a single allocation.
//!
//! A profile used to keep its identifiers as an `Option<Box<str>>` and three `Vec`s of
//! boxed strings: 88 bytes inline plus two or three heap objects for the common
//! "one userId, one anonymousId" profile, ~200 bytes of resident memory before the
//! identifier bytes themselves. Here they are one boxed byte string (16 bytes inline,
//! one heap object of exactly the bytes needed, none for a profile without identifiers).
//!
//! Layout of the packed bytes, a sequence of entries, grouped by kind in ascending
//! kind order and in insertion order within a kind (so equal identities have equal
//! bytes):
//!
//! ```text
//! entry  := kind:u8 length:LEB128 utf8-bytes[length]
//! kind   := 0 userId (at most one) | 1 anonymousId | 2 further userId | 3 identity-trait key
//! ```
//!
//! Identifiers change rarely (a first anonymousId, an alias, a merge), so a change
//! rebuilds the whole allocation; reads walk the few entries in place.

/// Which list an entry belongs to; the discriminant is the stored kind byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Kind {
    UserId = 0,
    AnonymousId = 1,
    OtherUserId = 2,
    OtherTraitKey = 3,
}

/// Identifiers held by one profile (identity traits live in their columns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileIdentity {
    packed: Option<Box<[u8]>>,
}

/// Entries of the packed bytes, in stored order.
struct Entries<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = (u8, &'a str);

    fn next(&mut self) -> Option<(u8, &'a str)> {
        let (&kind, rest) = self.bytes.split_first()?;
        let mut length = 0usize;
        let mut shift = 0;
        let mut used = 0;
        for &byte in rest {
            used += 1;
            length |= ((byte & 0x7f) as usize) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let text = &rest[used..used + length];
        self.bytes = &rest[used + length..];
        // The bytes were copied from `&str`s by `push_entry`, entry by entry.
        Some((kind, std::str::from_utf8(text).unwrap_or_default()))
    }
}

fn push_entry(out: &mut Vec<u8>, kind: u8, text: &str) {
    out.push(kind);
    let mut length = text.len();
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(text.as_bytes());
}

impl ProfileIdentity {
    /// An identity from its lists (snapshot load, bulk import).
    pub fn from_parts<'a>(
        user_id: Option<&str>,
        anonymous_ids: impl IntoIterator<Item = &'a str>,
        other_user_ids: impl IntoIterator<Item = &'a str>,
        other_trait_keys: impl IntoIterator<Item = &'a str>,
    ) -> ProfileIdentity {
        let mut out = Vec::new();
        if let Some(user_id) = user_id {
            push_entry(&mut out, Kind::UserId as u8, user_id);
        }
        for id in anonymous_ids {
            push_entry(&mut out, Kind::AnonymousId as u8, id);
        }
        for id in other_user_ids {
            push_entry(&mut out, Kind::OtherUserId as u8, id);
        }
        for key in other_trait_keys {
            push_entry(&mut out, Kind::OtherTraitKey as u8, key);
        }
        ProfileIdentity::from_bytes(out)
    }

    fn from_bytes(bytes: Vec<u8>) -> ProfileIdentity {
        ProfileIdentity {
            packed: (!bytes.is_empty()).then(|| bytes.into_boxed_slice()),
        }
    }

    fn entries(&self) -> Entries<'_> {
        Entries {
            bytes: self.packed.as_deref().unwrap_or_default(),
        }
    }

    fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &str> + '_ {
        self.entries()
            .filter(move |(stored, _)| *stored == kind as u8)
            .map(|(_, text)| text)
    }

    /// Inserts an entry after the last entry of its kind (keeping the bytes canonical).
    fn insert(&mut self, kind: Kind, text: &str) {
        let bytes = self.packed.as_deref().unwrap_or_default();
        let mut at = 0;
        let mut entries = Entries { bytes };
        while let Some((stored, _)) = entries.next() {
            if stored > kind as u8 {
                break;
            }
            at = bytes.len() - entries.bytes.len();
        }
        let mut out = Vec::with_capacity(bytes.len() + text.len() + 6);
        out.extend_from_slice(&bytes[..at]);
        push_entry(&mut out, kind as u8, text);
        out.extend_from_slice(&bytes[at..]);
        *self = ProfileIdentity::from_bytes(out);
    }

    pub fn user_id(&self) -> Option<&str> {
        self.of_kind(Kind::UserId).next()
    }

    pub fn anonymous_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.of_kind(Kind::AnonymousId)
    }

    /// Further userIds that reach this profile (from `alias` or a merge of two known
    /// users); the profile stays addressed by its `user_id`.
    pub fn other_user_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.of_kind(Kind::OtherUserId)
    }

    /// Identity-trait keys (`t:email:x`) of profiles merged into this one whose values
    /// this profile does not hold (its own values won): they still reach it, and must
    /// go when it is deleted.
    pub fn other_trait_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.of_kind(Kind::OtherTraitKey)
    }

    pub fn has_anonymous_ids(&self) -> bool {
        self.anonymous_ids().next().is_some()
    }

    /// Identity-map keys of the identifiers held here (`u:` userIds, `a:` anonymousIds).
    pub fn keys(&self) -> Vec<String> {
        self.user_id()
            .into_iter()
            .chain(self.other_user_ids())
            .map(|id| format!("u:{id}"))
            .chain(self.anonymous_ids().map(|id| format!("a:{id}")))
            .chain(self.other_trait_keys().map(str::to_string))
            .collect()
    }

    /// Records identity-trait keys that reach this profile after a merge.
    pub fn add_trait_keys<'a>(&mut self, keys: impl Iterator<Item = &'a String>) {
        for key in keys.filter(|key| key.starts_with("t:")) {
            if !self.other_trait_keys().any(|known| known == key) {
                self.insert(Kind::OtherTraitKey, key);
            }
        }
    }

    /// Records a userId that names this profile.
    pub fn add_user_id(&mut self, user_id: &str) {
        match self.user_id() {
            None => self.insert(Kind::UserId, user_id),
            Some(existing) if existing == user_id => {}
            Some(_) => {
                if !self.other_user_ids().any(|id| id == user_id) {
                    self.insert(Kind::OtherUserId, user_id);
                }
            }
        }
    }

    /// Appends a further userId as stored (snapshot load: the lists were de-duplicated
    /// when they were built).
    pub(crate) fn push_other_user_id(&mut self, user_id: &str) {
        self.insert(Kind::OtherUserId, user_id);
    }

    /// Appends an identity-trait key as stored (snapshot load).
    pub(crate) fn push_other_trait_key(&mut self, key: &str) {
        self.insert(Kind::OtherTraitKey, key);
    }

    /// Records an anonymousId that names this profile (once).
    pub fn add_anonymous_id(&mut self, anonymous_id: &str) {
        if !self.anonymous_ids().any(|id| id == anonymous_id) {
            self.insert(Kind::AnonymousId, anonymous_id);
        }
    }

    /// The id profiles are addressed by: `userId`, else `anon:<anonymousId>`.
    pub fn external_id(&self) -> String {
        match (self.user_id(), self.anonymous_ids().next()) {
            (Some(user_id), _) => user_id.to_string(),
            (None, Some(anonymous_id)) => format!("anon:{anonymous_id}"),
            (None, None) => String::new(),
        }
    }

    /// Bytes of the one heap allocation (0 without identifiers).
    pub fn heap_bytes(&self) -> usize {
        self.packed.as_ref().map_or(0, |bytes| bytes.len())
    }

    /// Memory the allocation really takes: glibc's malloc rounds a request plus its
    /// 8-byte header up to 16 bytes, 32 at least.
    pub fn allocated_bytes(&self) -> usize {
        match self.heap_bytes() {
            0 => 0,
            requested => ((requested + 8 + 15) & !15).max(32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The representation this module replaced, as the reference.
    #[derive(Default, Debug, PartialEq)]
    struct Lists {
        user_id: Option<String>,
        anonymous_ids: Vec<String>,
        other_user_ids: Vec<String>,
        other_trait_keys: Vec<String>,
    }

    fn lists_of(identity: &ProfileIdentity) -> Lists {
        Lists {
            user_id: identity.user_id().map(str::to_string),
            anonymous_ids: identity.anonymous_ids().map(str::to_string).collect(),
            other_user_ids: identity.other_user_ids().map(str::to_string).collect(),
            other_trait_keys: identity.other_trait_keys().map(str::to_string).collect(),
        }
    }

    fn identifier() -> impl Strategy<Value = String> {
        // Short ids collide often (duplicates); long ones need multi-byte lengths.
        prop_oneof!["[a-c]{1,2}", "[a-zé😀]{100,200}", Just(String::new()),]
    }

    proptest! {
        #[test]
        fn packed_identity_matches_the_lists(operations in proptest::collection::vec((0u8..3, identifier()), 0..40)) {
            let mut identity = ProfileIdentity::default();
            let mut reference = Lists::default();
            for (operation, id) in &operations {
                match operation {
                    0 => {
                        identity.add_user_id(id);
                        match &reference.user_id {
                            None => reference.user_id = Some(id.clone()),
                            Some(existing) if existing == id => {}
                            Some(_) => {
                                if !reference.other_user_ids.contains(id) {
                                    reference.other_user_ids.push(id.clone());
                                }
                            }
                        }
                    }
                    1 => {
                        identity.add_anonymous_id(id);
                        if !reference.anonymous_ids.contains(id) {
                            reference.anonymous_ids.push(id.clone());
                        }
                    }
                    _ => {
                        let key = format!("t:email:{id}");
                        identity.add_trait_keys(std::iter::once(&key));
                        if !reference.other_trait_keys.contains(&key) {
                            reference.other_trait_keys.push(key);
                        }
                    }
                }
                prop_assert_eq!(&lists_of(&identity), &reference);
            }
            // Canonical bytes: rebuilding from the lists gives an equal identity.
            let rebuilt = ProfileIdentity::from_parts(
                reference.user_id.as_deref(),
                reference.anonymous_ids.iter().map(String::as_str),
                reference.other_user_ids.iter().map(String::as_str),
                reference.other_trait_keys.iter().map(String::as_str),
            );
            prop_assert_eq!(&rebuilt, &identity);
            prop_assert_eq!(identity.heap_bytes() == 0, operations.is_empty());
        }
    }

    #[test]
    fn external_id_prefers_the_user_id() {
        let mut identity = ProfileIdentity::default();
        assert_eq!(identity.external_id(), "");
        identity.add_anonymous_id("d1");
        assert_eq!(identity.external_id(), "anon:d1");
        identity.add_user_id("u1");
        assert_eq!(identity.external_id(), "u1");
        assert_eq!(identity.keys(), vec!["u:u1", "a:d1"]);
    }
}
