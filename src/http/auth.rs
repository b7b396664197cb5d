//! API keys and scopes.
//!
//! - ingest (`Scope::Write`): HTTP Basic with a write key as the username and an empty
//!   password, the Segment convention; without an `Authorization` header (browsers'
//!   `sendBeacon` cannot set one) the body's `writeKey` is checked instead;
//! - reads (`Scope::Read`) and segment management/admin (`Scope::Admin`): `Authorization:
//!   Bearer <key>`. An admin key passes for every scope.
//!
//! Open (no key needed) only when no scope has a key: configuring any key closes every
//! scope, so `--write-key` and `--read-key` without `--admin-key` leave admin usable by
//! nobody rather than by everybody. A request without a key, or with a key that matches
//! nothing, is 401; a valid key of another scope is 403.
//!
//! Comparison: the presented key and every configured key are hashed (SHA-256, so lengths
//! do not show) and compared in constant time (`subtle`) against every key of every
//! scope, whatever matches first, so timing reveals neither a key's prefix, its length,
//! nor which scope it belongs to.

use crate::http::error::ApiError;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Health, metrics, API description: no key.
    Public,
    Write,
    Read,
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Public => "public",
            Scope::Write => "write",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// Longest key accepted in configuration, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Configured keys per scope.
#[derive(Clone, Default)]
pub struct Keys {
    pub write: Vec<String>,
    pub read: Vec<String>,
    pub admin: Vec<String>,
}

/// Never shows the keys themselves (configuration is logged with `{:?}`).
impl std::fmt::Debug for Keys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Keys")
            .field("write", &self.write.len())
            .field("read", &self.read.len())
            .field("admin", &self.admin.len())
            .finish()
    }
}

/// Marks a write request that came without `Authorization`: its body's `writeKey`
/// must be a write key (checked by the ingest body extractor).
#[derive(Clone, Copy, Debug)]
pub struct KeyInBody;

#[cfg(test)]
thread_local! {
    /// Key comparisons made on this thread (tests check that every key is compared).
    static COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// SHA-256 digests of the configured keys per scope (write, read, admin).
type Digests = [Vec<[u8; 32]>; 3];

fn digests(keys: &Keys) -> Digests {
    [&keys.write, &keys.read, &keys.admin].map(|scope_keys| {
        scope_keys
            .iter()
            .map(|key| Sha256::digest(key.as_bytes()).into())
            .collect()
    })
}

/// Which scopes' keys `presented` matches, each comparison in constant time.
fn matches(digests: &Digests, presented: &str) -> [bool; 3] {
    let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = [Choice::from(0u8); 3];
    for (slot, scope_digests) in digests.iter().enumerate() {
        for digest in scope_digests {
            #[cfg(test)]
            COMPARISONS.with(|count| count.set(count.get() + 1));
            found[slot] |= digest.ct_eq(&presented);
        }
    }
    found.map(bool::from)
}

/// The server's keys with their digests computed once: every request is checked
/// against them, and hashing each configured key again per request cost more than the
/// lookup it guarded (callgrind: ~12,000 instructions per read request with two keys).
/// Derefs to [`Keys`] for the configuration questions (`is_open`, ...).
pub struct KeyRing {
    keys: Keys,
    digests: Digests,
}

impl KeyRing {
    pub fn new(keys: Keys) -> KeyRing {
        let digests = digests(&keys);
        KeyRing { keys, digests }
    }
}

impl std::ops::Deref for KeyRing {
    type Target = Keys;

    fn deref(&self) -> &Keys {
        &self.keys
    }
}

/// Never shows the keys themselves (like [`Keys`]).
impl std::fmt::Debug for KeyRing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.keys.fmt(formatter)
    }
}

/// A key as presented in the `Authorization` header (a Bearer key borrowed from the
/// header: reads check it on every request).
enum Presented<'a> {
    None,
    Basic(String),
    Bearer(&'a str),
    Malformed,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Presented::None;
    };
    let Ok(value) = value.to_str() else {
        return Presented::Malformed;
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Bearer(rest);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return Presented::Malformed;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return Presented::Malformed;
        };
        // Username is the write key; the password (normally empty) is ignored.
        let username = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
        return Presented::Basic(username.to_string());
    }
    Presented::Malformed
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn forbidden(scope: Scope) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this key is valid but not for {} endpoints — use a {} key",
            scope.name(),
            scope.name()
        ),
    )
}

/// The host name of a `Host` header value: port and a trailing dot removed, lowercase.
fn host_name(value: &str) -> String {
    let value = value.trim();
    let name = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match value.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
            _ => value,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a request may reach an open server under its `Host`: an IP literal,
/// `localhost`, or a configured name (`--allowed-host`), any port. A DNS-rebinding page
/// reaches a local server under its own domain name, which is none of these. Requests
/// without `Host` (not from a browser) pass.
pub fn host_allowed(headers: &HeaderMap, allowed_hosts: &[String]) -> bool {
    let Some(value) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let name = host_name(value);
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || allowed_hosts
            .iter()
            .any(|allowed| host_name(allowed) == name)
}

impl Keys {
    /// Whether a scope runs without keys: only when no scope has a key.
    pub fn is_open(&self, scope: Scope) -> bool {
        scope == Scope::Public || self.none_configured()
    }

    /// No key at all: every scope is open.
    pub fn none_configured(&self) -> bool {
        self.write.is_empty() && self.read.is_empty() && self.admin.is_empty()
    }

    /// Scopes that have no key of their own while others do: only admin keys can use
    /// them (the start-up banner says so).
    pub fn admin_only_scopes(&self) -> Vec<Scope> {
        if self.none_configured() {
            return Vec::new();
        }
        [(Scope::Write, &self.write), (Scope::Read, &self.read)]
            .into_iter()
            .filter(|(_, keys)| keys.is_empty())
            .map(|(scope, _)| scope)
            .collect()
    }

    /// The scopes (of write, read, admin) that are open.
    pub fn open_scopes(&self) -> Vec<Scope> {
        [Scope::Write, Scope::Read, Scope::Admin]
            .into_iter()
            .filter(|scope| self.is_open(*scope))
            .collect()
    }

    /// See [`KeyRing::check_or_defer`] (digests computed for this call; the server keeps a
    /// [`KeyRing`]).
    pub fn check_or_defer(
        &self,
        scope: Scope,
        headers: &HeaderMap,
    ) -> Result<Option<KeyInBody>, ApiError> {
        KeyRing::new(self.clone()).check_or_defer(scope, headers)
    }

    /// See [`KeyRing::check_body_key`].
    pub fn check_body_key(&self, body: &[u8]) -> Result<(), ApiError> {
        KeyRing::new(self.clone()).check_body_key(body)
    }

    /// See [`KeyRing::check`].
    pub fn check(&self, scope: Scope, headers: &HeaderMap) -> Result<(), ApiError> {
        KeyRing::new(self.clone()).check(scope, headers)
    }
}

impl KeyRing {
    fn scope_of(&self, key: &str) -> Option<Scope> {
        let [write, read, admin] = matches(&self.digests, key);
        if admin {
            Some(Scope::Admin)
        } else if read {
            Some(Scope::Read)
        } else if write {
            Some(Scope::Write)
        } else {
            None
        }
    }

    /// Like [`Keys::check`], but a write request without `Authorization` passes with a
    /// [`KeyInBody`] mark: its key is in the body, checked once the body is read.
    pub fn check_or_defer(
        &self,
        scope: Scope,
        headers: &HeaderMap,
    ) -> Result<Option<KeyInBody>, ApiError> {
        if scope == Scope::Write
            && !self.keys.is_open(scope)
            && !headers.contains_key(header::AUTHORIZATION)
        {
            return Ok(Some(KeyInBody));
        }
        self.check(scope, headers).map(|()| None)
    }

    /// Checks the `writeKey` of an ingest body (sent without `Authorization`).
    pub fn check_body_key(&self, body: &[u8]) -> Result<(), ApiError> {
        /// Only `writeKey` is read; every other field is skipped without being built.
        #[derive(serde::Deserialize)]
        struct KeyOnly<'a> {
            #[serde(rename = "writeKey", borrow, default)]
            write_key: Option<std::borrow::Cow<'a, str>>,
        }
        let key = serde_json::from_slice::<KeyOnly<'_>>(body)
            .ok()
            .and_then(|body| body.write_key);
        let Some(key) = key.as_deref() else {
            return Err(unauthorized(
                "missing write key: send HTTP Basic auth with the write key as the username and an empty password, or `writeKey` in the body",
            ));
        };
        match self.scope_of(key) {
            Some(Scope::Write | Scope::Admin) => Ok(()),
            Some(_) => Err(forbidden(Scope::Write)),
            None => Err(unauthorized("unknown key")),
        }
    }

    /// Checks a request's `Authorization` header against a route's scope.
    pub fn check(&self, scope: Scope, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.keys.is_open(scope) {
            return Ok(());
        }
        let basic;
        let (key, how) = match presented(headers) {
            Presented::None => {
                return Err(unauthorized(match scope {
                    Scope::Write => "missing write key: send HTTP Basic auth with the write key as the username and an empty password",
                    _ => "missing key: send `Authorization: Bearer <key>`",
                }))
            }
            Presented::Malformed => {
                return Err(unauthorized(
                    "malformed Authorization header: use `Basic <base64(writeKey:)>` or `Bearer <key>`",
                ))
            }
            Presented::Basic(key) => {
                basic = key;
                (basic.as_str(), Scope::Write)
            }
            Presented::Bearer(key) => (key, Scope::Read),
        };
        let Some(found) = self.scope_of(key) else {
            return Err(unauthorized("unknown key"));
        };
        let allowed = match scope {
            Scope::Public => true,
            // Write keys come as Basic (SDKs) or Bearer (scripts); admin keys pass too.
            Scope::Write => matches!(found, Scope::Write | Scope::Admin),
            Scope::Read => matches!(found, Scope::Read | Scope::Admin) && how == Scope::Read,
            Scope::Admin => found == Scope::Admin && how == Scope::Read,
        };
        if allowed {
            Ok(())
        } else {
            Err(forbidden(scope))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn keys() -> Keys {
        Keys {
            write: vec!["wk".into()],
            read: vec!["rk".into()],
            admin: vec!["ak".into()],
        }
    }

    #[test]
    fn scopes_and_statuses() {
        let keys = keys();
        let basic = |key: &str| {
            headers(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
            ))
        };
        assert!(keys.check(Scope::Write, &basic("wk")).is_ok());
        assert!(keys.check(Scope::Write, &headers("Bearer wk")).is_ok());
        assert_eq!(
            keys.check(Scope::Write, &basic("rk")).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            keys.check(Scope::Write, &basic("nope")).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            keys.check(Scope::Read, &HeaderMap::new())
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(keys.check(Scope::Read, &headers("Bearer rk")).is_ok());
        assert!(keys.check(Scope::Read, &headers("Bearer ak")).is_ok());
        assert!(keys.check(Scope::Admin, &headers("Bearer ak")).is_ok());
        assert_eq!(
            keys.check(Scope::Admin, &headers("Bearer rk"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            keys.check(Scope::Read, &headers("Bearer wk"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            keys.check(Scope::Read, &headers("Token x"))
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(keys.check(Scope::Public, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn open_only_when_no_scope_has_a_key() {
        // Write and read keys without an admin key: admin is closed, not open.
        let no_admin = Keys {
            write: vec!["wk".into()],
            read: vec!["rk".into()],
            ..Keys::default()
        };
        assert!(!no_admin.is_open(Scope::Admin));
        assert_eq!(
            no_admin
                .check(Scope::Admin, &HeaderMap::new())
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            no_admin
                .check(Scope::Admin, &headers("Bearer rk"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        // Only an admin key: write and read are closed too, and the admin key serves them.
        let only_admin = Keys {
            admin: vec!["ak".into()],
            ..Keys::default()
        };
        assert!(only_admin.check(Scope::Write, &HeaderMap::new()).is_err());
        assert!(only_admin.check(Scope::Read, &HeaderMap::new()).is_err());
        assert!(only_admin
            .check(Scope::Write, &headers("Bearer ak"))
            .is_ok());
        assert_eq!(
            only_admin.admin_only_scopes(),
            vec![Scope::Write, Scope::Read]
        );
        assert!(Keys::default().is_open(Scope::Admin));
        assert!(Keys::default()
            .check(Scope::Admin, &HeaderMap::new())
            .is_ok());
    }

    #[test]
    fn every_key_of_every_scope_is_compared() {
        let keys = Keys {
            write: vec!["w1".into(), "w2".into()],
            read: vec!["r1".into()],
            admin: vec!["a1".into(), "a-much-longer-admin-key".into()],
        };
        for presented in ["a1", "w1", "r1", "nothing", "x"] {
            COMPARISONS.with(|count| count.set(0));
            let _ = keys.check(Scope::Read, &headers(&format!("Bearer {presented}")));
            assert_eq!(
                COMPARISONS.with(|count| count.get()),
                5,
                "`{presented}` was not compared against all five keys"
            );
        }
    }

    #[test]
    fn write_key_in_the_body_without_authorization() {
        let keys = keys();
        assert!(keys
            .check_or_defer(Scope::Write, &HeaderMap::new())
            .unwrap()
            .is_some());
        // With a header, the header decides at once.
        assert!(keys
            .check_or_defer(Scope::Write, &headers("Bearer wk"))
            .unwrap()
            .is_none());
        assert!(keys.check_or_defer(Scope::Read, &HeaderMap::new()).is_err());
        assert!(keys.check_body_key(br#"{"writeKey": "wk"}"#).is_ok());
        assert_eq!(
            keys.check_body_key(br#"{"writeKey": "rk"}"#)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            keys.check_body_key(br#"{"writeKey": "nope"}"#)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            keys.check_body_key(br#"{"batch": []}"#).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn host_check_of_an_open_server() {
        let host = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
            headers
        };
        let names = vec!["segd.internal".to_string()];
        for good in [
            "127.0.0.1:7700",
            "localhost:7700",
            "LOCALHOST",
            "[::1]:7700",
            "10.0.0.5",
            "segd.internal:7700",
            "segd.internal.",
        ] {
            assert!(host_allowed(&host(good), &names), "{good}");
        }
        for bad in [
            "evil.example:7700",
            "localhost.evil.example",
            "segd.internal.evil.example",
            "127.0.0.1.nip.io:7700",
        ] {
            assert!(!host_allowed(&host(bad), &names), "{bad}");
        }
        assert!(host_allowed(&HeaderMap::new(), &names));
    }

    #[test]
    fn debug_output_hides_keys() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains("wk") && !shown.contains("ak"), "{shown}");
    }
}
