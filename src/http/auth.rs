//! API keys and scopes.
//!
//! - ingest (`Scope::Write`): HTTP Basic with a write key as the username and an empty
//!   password, the Segment convention;
//! - reads (`Scope::Read`) and segment management/admin (`Scope::Admin`): `Authorization:
//!   Bearer <key>`. An admin key also passes for reads.
//!
//! A scope with no keys configured is open (the server warns about each at start-up);
//! reads are open only when there are neither read nor admin keys. A request without a
//! key, or with a key that matches nothing, is 401; a valid key of another scope is 403.

use crate::http::error::ApiError;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;

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
#[derive(Clone, Debug, Default)]
pub struct Keys {
    pub write: Vec<String>,
    pub read: Vec<String>,
    pub admin: Vec<String>,
}

/// Compares without an early exit, so response timing does not reveal key prefixes.
fn same(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

fn holds(keys: &[String], presented: &str) -> bool {
    keys.iter().fold(false, |found, key| {
        found | same(key.as_bytes(), presented.as_bytes())
    })
}

/// A key as presented in the `Authorization` header.
enum Presented {
    None,
    Basic(String),
    Bearer(String),
    Malformed,
}

fn presented(headers: &HeaderMap) -> Presented {
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
        return Presented::Bearer(rest.to_string());
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

impl Keys {
    /// Whether a scope runs without keys.
    pub fn is_open(&self, scope: Scope) -> bool {
        match scope {
            Scope::Public => true,
            Scope::Write => self.write.is_empty(),
            Scope::Read => self.read.is_empty() && self.admin.is_empty(),
            Scope::Admin => self.admin.is_empty(),
        }
    }

    /// The scopes (of write, read, admin) that are open.
    pub fn open_scopes(&self) -> Vec<Scope> {
        [Scope::Write, Scope::Read, Scope::Admin]
            .into_iter()
            .filter(|scope| self.is_open(*scope))
            .collect()
    }

    fn scope_of(&self, key: &str) -> Option<Scope> {
        if holds(&self.admin, key) {
            Some(Scope::Admin)
        } else if holds(&self.read, key) {
            Some(Scope::Read)
        } else if holds(&self.write, key) {
            Some(Scope::Write)
        } else {
            None
        }
    }

    /// Checks a request's `Authorization` header against a route's scope.
    pub fn check(&self, scope: Scope, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.is_open(scope) {
            return Ok(());
        }
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
            Presented::Basic(key) => (key, Scope::Write),
            Presented::Bearer(key) => (key, Scope::Read),
        };
        let Some(found) = self.scope_of(&key) else {
            return Err(unauthorized("unknown key"));
        };
        let allowed = match scope {
            Scope::Public => true,
            // Write keys come as Basic (SDKs) or Bearer (scripts).
            Scope::Write => found == Scope::Write,
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
    fn open_scopes() {
        let only_admin = Keys {
            admin: vec!["ak".into()],
            ..Keys::default()
        };
        assert_eq!(only_admin.open_scopes(), vec![Scope::Write]);
        assert!(only_admin.check(Scope::Write, &HeaderMap::new()).is_ok());
        assert!(only_admin.check(Scope::Read, &HeaderMap::new()).is_err());
        assert_eq!(Keys::default().open_scopes().len(), 3);
    }
}
