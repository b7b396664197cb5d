//! Console sessions: an admin or read key is exchanged once for a random session id held
//! in an `HttpOnly`, `SameSite=Strict` cookie, so the page never holds the key (and
//! `EventSource`, which cannot send headers, is authenticated by the cookie).
//!
//! - Sessions live in memory only, keyed by the SHA-256 of their id (a leaked map dump or
//!   a timing side channel on the map reveals nothing usable), at most
//!   [`ConsoleOptions::max_sessions`] of them (the least recently used goes first).
//! - A session ends after `session_idle_ms` without a request, after `session_max_ms` in
//!   any case, or on sign-out.
//! - State-changing requests (anything but GET/HEAD) made with the cookie must carry the
//!   session's CSRF token in `X-CSRF-Token`, and an `Origin` header, when sent, must name
//!   this host. SameSite=Strict already keeps the cookie off cross-site requests; the token
//!   is the second, browser-independent line.
//! - A read-key session is read-only: GET/HEAD on read routes only. No session reaches
//!   write (ingest) routes.
//! - A request with an `Authorization` header is judged by its key alone, exactly as
//!   before: the lookup hot path does one extra header lookup and nothing else.

use crate::http::auth::{KeyInBody, Scope};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "segd_session";
/// Header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Session limits.
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// A session ends after this long without a request.
    pub session_idle_ms: u64,
    /// A session ends this long after sign-in, active or not.
    pub session_max_ms: u64,
    /// Most sessions held at once; signing in beyond it ends the least recently used.
    pub max_sessions: usize,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            session_idle_ms: 30 * 60 * 1_000,
            session_max_ms: 12 * 60 * 60 * 1_000,
            max_sessions: 1_024,
        }
    }
}

/// What a session may do: the scope of the key it was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Read,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Read => "read",
        }
    }
}

#[derive(Debug)]
struct Session {
    role: Role,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    options: ConsoleOptions,
    table: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares without an early exit.
fn same(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// A live session as seen by a request.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub role: Role,
    pub csrf: String,
    pub expires_in_ms: u64,
}

impl Sessions {
    pub fn new(options: ConsoleOptions) -> Sessions {
        Sessions {
            options,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) >= Duration::from_millis(self.options.session_idle_ms)
            || now.duration_since(session.created)
                >= Duration::from_millis(self.options.session_max_ms)
    }

    /// Opens a session; returns its id (the cookie value) and CSRF token.
    pub fn open(&self, role: Role) -> (String, String) {
        let token = random_token();
        let csrf = random_token();
        let now = Instant::now();
        let mut table = self.table.lock();
        table.retain(|_, session| !self.expired(session, now));
        while table.len() >= self.options.max_sessions.max(1) {
            let Some(oldest) = table
                .iter()
                .min_by_key(|(_, session)| session.last_seen)
                .map(|(key, _)| *key)
            else {
                break;
            };
            table.remove(&oldest);
        }
        table.insert(
            digest(&token),
            Session {
                role,
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        (token, csrf)
    }

    /// The live session of this id (touching it), or `None` when unknown or expired
    /// (an expired one is removed).
    pub fn touch(&self, token: &str) -> Option<SessionView> {
        let key = digest(token);
        let now = Instant::now();
        let mut table = self.table.lock();
        let session = table.get_mut(&key)?;
        if self.expired(session, now) {
            table.remove(&key);
            return None;
        }
        session.last_seen = now;
        let idle_left = Duration::from_millis(self.options.session_idle_ms);
        let max_left = Duration::from_millis(self.options.session_max_ms)
            .saturating_sub(now.duration_since(session.created));
        Some(SessionView {
            role: session.role,
            csrf: session.csrf.clone(),
            expires_in_ms: idle_left.min(max_left).as_millis() as u64,
        })
    }

    /// Ends a session; whether it existed.
    pub fn end(&self, token: &str) -> bool {
        self.table.lock().remove(&digest(token)).is_some()
    }

    /// Sessions currently held (expired ones included until next swept).
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session id from the `Cookie` header(s), if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn csrf_refused(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf_refused", message)
}

/// An `Origin` header, when present, must name the host the request was sent to.
fn origin_matches(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

fn is_safe(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Checks a state-changing request made with a session: CSRF token and origin.
fn check_csrf(view: &SessionView, headers: &HeaderMap) -> Result<(), ApiError> {
    if !origin_matches(headers) {
        return Err(csrf_refused(
            "cross-origin request refused: the console only accepts requests from its own page",
        ));
    }
    let presented = headers
        .get(CSRF_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !same(presented, view.csrf.as_bytes()) {
        return Err(csrf_refused(
            "missing or wrong X-CSRF-Token: send the token from /console/api/session with every change",
        ));
    }
    Ok(())
}

fn session_expired() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "session_expired",
        "the console session ended or expired: sign in again",
    )
}

/// The route check: a key in `Authorization` is judged by the keys alone; otherwise a
/// session cookie may stand in for an admin or read key.
pub fn check(
    state: &AppState,
    scope: Scope,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<KeyInBody>, ApiError> {
    if scope == Scope::Public
        || headers.contains_key(header::AUTHORIZATION)
        || state.keys.is_open(scope)
    {
        return state.keys.check_or_defer(scope, headers);
    }
    let Some(token) = cookie_token(headers) else {
        return state.keys.check_or_defer(scope, headers);
    };
    let view = state
        .console
        .sessions
        .touch(token)
        .ok_or_else(session_expired)?;
    let allowed = match (scope, view.role) {
        (Scope::Admin, Role::Admin) | (Scope::Read, Role::Admin) => true,
        (Scope::Read, Role::Read) => is_safe(method),
        _ => false,
    };
    if !allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this console session was opened with a {} key and cannot do this; sign in with an admin key",
                view.role.name()
            ),
        ));
    }
    if !is_safe(method) {
        check_csrf(&view, headers)?;
    }
    Ok(None)
}

fn session_cookie(token: &str, headers: &HeaderMap) -> HeaderValue {
    // Secure when the browser reached us over TLS (a terminating proxy says so).
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let value = format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("segd_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    key: String,
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A console session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionAnswer {
    /// `admin` or `read`.
    pub role: &'static str,
    /// Send as `X-CSRF-Token` on state-changing requests (empty on an open server).
    pub csrf: String,
    /// Idle time left before the session ends (absent on an open server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// The server has no keys: no sign-in needed (absent in the sign-in answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
}

/// `POST /console/api/logout`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    pub signed_out: bool,
}

/// Exchange an admin or read key for a console session cookie.
#[utoipa::path(post, path = "/console/api/login", operation_id = "consoleLogin", tag = "console",
    request_body = Login,
    responses(
        (status = 200, description = "Signed in; the `segd_session` cookie is set", body = SessionAnswer),
        (status = "default", description = "Error (401 unknown key, 403 a write key or a cross-origin request)", body = ErrorBody),
    ))]
/// `POST /console/api/login` `{"key": "..."}` → session cookie + `{role, csrf}`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    crate::http::body::JsonBody(body): crate::http::body::JsonBody<Login>,
) -> Result<Response, ApiError> {
    if !origin_matches(&headers) {
        return Err(csrf_refused(
            "cross-origin sign-in refused: sign in from the console page itself",
        ));
    }
    let key = body.key.trim();
    if key.is_empty() || key.len() > crate::http::auth::MAX_KEY_BYTES {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "enter an admin or read key",
        ));
    }
    let mut bearer = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown key"))?;
    bearer.insert(header::AUTHORIZATION, value);
    let role = if state.keys.check(Scope::Admin, &bearer).is_ok() {
        Role::Admin
    } else {
        match state.keys.check(Scope::Read, &bearer) {
            Ok(()) => Role::Read,
            Err(error) if error.status == StatusCode::FORBIDDEN => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "write keys cannot sign in to the console: use an admin or read key",
                ))
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "unknown key",
                ))
            }
        }
    };
    let (token, csrf) = state.console.sessions.open(role);
    let mut response = Json(SessionAnswer {
        role: role.name(),
        csrf,
        expires_in_ms: Some(state.console.sessions.options.session_idle_ms),
        open: None,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&token, &headers));
    Ok(no_store(response))
}

/// The console session (role, CSRF token), 401 without one.
#[utoipa::path(get, path = "/console/api/session", operation_id = "consoleSession", tag = "console",
    responses(
        (status = 200, description = "The cookie's session, or `open: true` on a server without keys", body = SessionAnswer),
        (status = "default", description = "Error (401 not signed in)", body = ErrorBody),
    ))]
/// `GET /console/api/session` → `{role, csrf, expires_in_ms}` of the cookie's session;
/// 401 without one. When admin endpoints run without keys, `{role: "admin", open: true}`.
pub async fn current(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(view) = cookie_token(&headers).and_then(|token| state.console.sessions.touch(token))
    {
        return no_store(
            Json(SessionAnswer {
                role: view.role.name(),
                csrf: view.csrf,
                expires_in_ms: Some(view.expires_in_ms),
                open: Some(false),
            })
            .into_response(),
        );
    }
    if state.keys.is_open(Scope::Admin) {
        return no_store(
            Json(SessionAnswer {
                role: "admin",
                csrf: String::new(),
                expires_in_ms: None,
                open: Some(true),
            })
            .into_response(),
        );
    }
    no_store(
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "not signed in: POST /console/api/login with an admin or read key",
        )
        .into_response(),
    )
}

/// End the console session.
#[utoipa::path(post, path = "/console/api/logout", operation_id = "consoleLogout", tag = "console",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 200, description = "Signed out; the cookie is cleared", body = SignedOut),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
/// `POST /console/api/logout` (with the CSRF token) ends the session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = cookie_token(&headers).ok_or_else(session_expired)?;
    let view = state
        .console
        .sessions
        .touch(token)
        .ok_or_else(session_expired)?;
    check_csrf(&view, &headers)?;
    state.console.sessions.end(token);
    let mut response = Json(SignedOut { signed_out: true }).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cleared_cookie());
    Ok(no_store(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_are_bounded() {
        let sessions = Sessions::new(ConsoleOptions {
            session_idle_ms: 0,
            ..ConsoleOptions::default()
        });
        let (token, _) = sessions.open(Role::Admin);
        assert!(
            sessions.touch(&token).is_none(),
            "idle limit 0 ends at once"
        );

        let sessions = Sessions::new(ConsoleOptions {
            max_sessions: 2,
            ..ConsoleOptions::default()
        });
        let (first, _) = sessions.open(Role::Read);
        let (second, _) = sessions.open(Role::Read);
        assert!(sessions.touch(&second).is_some());
        let (third, _) = sessions.open(Role::Admin);
        assert_eq!(sessions.len(), 2);
        assert!(sessions.touch(&first).is_none(), "least recently used went");
        assert!(sessions.touch(&second).is_some() && sessions.touch(&third).is_some());
        assert!(sessions.end(&third) && !sessions.end(&third));
    }

    #[test]
    fn reads_the_cookie_and_checks_origins() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; segd_session=abc ; b=2"),
        );
        assert_eq!(cookie_token(&headers), Some("abc"));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(origin_matches(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(origin_matches(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        assert!(!origin_matches(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_matches(&headers));
    }
}
