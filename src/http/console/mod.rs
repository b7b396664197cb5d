//! The marketer console served at `/console/`: session sign-in (cookie instead of a key
//! in the page), static assets compiled into the binary, and the read-only helpers the
//! pages need (`GET /v1/schema`, last-hour activity per segment, rule text ⇄ AST).
//! Everything here runs only when the console asks; nothing touches ingest or lookups.

pub mod activity;
pub mod assets;
pub mod rule;
pub mod schema;
pub mod session;
pub mod spans;

use crate::http::auth::Scope;
use crate::http::{route, AppState, Route};
use axum::http::Method;
pub use session::ConsoleOptions;

/// The console's server-side state.
#[derive(Debug)]
pub struct Console {
    pub sessions: session::Sessions,
    pub activity: activity::Activity,
}

impl Console {
    pub fn new(options: ConsoleOptions) -> Console {
        Console {
            sessions: session::Sessions::new(options),
            activity: activity::Activity::default(),
        }
    }
}

/// Checks a route's scope: keys as before, or a console session (see [`session::check`]).
pub fn check(
    state: &AppState,
    scope: Scope,
    method: &Method,
    headers: &axum::http::HeaderMap,
) -> Result<Option<crate::http::auth::KeyInBody>, crate::http::error::ApiError> {
    session::check(state, scope, method, headers)
}

/// The console's routes and `GET /v1/schema`.
pub fn routes() -> Vec<Route> {
    use axum::routing::{get, post};
    vec![
        route(
            Method::GET,
            "/v1/schema",
            Scope::Admin,
            "Traits with types and top values, events with property names (for rule builders)",
            get(schema::get_schema),
        ),
        route(
            Method::GET,
            "/",
            Scope::Public,
            "Redirects to the console",
            get(assets::root_to_console),
        ),
        route(
            Method::GET,
            "/console",
            Scope::Public,
            "Redirects to the console",
            get(assets::to_console),
        ),
        route(
            Method::GET,
            "/console/",
            Scope::Public,
            "The marketer console",
            get(assets::index),
        ),
        route(
            Method::GET,
            "/console/{file}",
            Scope::Public,
            "Console assets",
            get(assets::file),
        ),
        route(
            Method::POST,
            "/console/api/login",
            Scope::Public,
            "Exchange an admin or read key for a console session cookie",
            post(session::login),
        ),
        route(
            Method::GET,
            "/console/api/session",
            Scope::Public,
            "The console session (role, CSRF token), 401 without one",
            get(session::current),
        ),
        route(
            Method::POST,
            "/console/api/logout",
            Scope::Public,
            "End the console session",
            post(session::logout),
        ),
        route(
            Method::GET,
            "/console/api/activity",
            Scope::Admin,
            "Entries and exits per segment over the last hour",
            get(activity::get_activity),
        ),
        route(
            Method::POST,
            "/console/api/rule",
            Scope::Admin,
            "Check a rule; text in, AST and canonical text out (and the reverse)",
            post(rule::check_rule),
        ),
    ]
}
