//! The console's static files, compiled into the binary (no build step, no Node): plain
//! HTML, CSS and JavaScript modules served with a strict Content-Security-Policy.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// (file name, content type, contents)
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/ui.js"),
    ),
    (
        "segments.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/segments.js"),
    ),
    (
        "editor.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/editor.js"),
    ),
    (
        "builder.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/builder.js"),
    ),
    (
        "profile.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/profile.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
];

/// Scripts and styles only from this origin, no framing, no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Set to a directory to serve the console files from disk instead of the binary (for
/// editing them without rebuilding; only the names above are served).
pub const DEV_DIR_ENV: &str = "SEGD_CONSOLE_DEV_DIR";

fn serve(name: &str) -> Response {
    let Some((file, content_type, built_in)) = FILES.iter().find(|(file, ..)| *file == name) else {
        return crate::http::error::ApiError::not_found(
            "console_file_not_found",
            "no such console file",
        )
        .into_response();
    };
    let body: String = match std::env::var_os(DEV_DIR_ENV) {
        Some(dir) => std::fs::read_to_string(std::path::Path::new(&dir).join(file))
            .unwrap_or_else(|_| built_in.to_string()),
        None => built_in.to_string(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Assets change with the binary; revalidate rather than serve a stale console.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The marketer console.
#[utoipa::path(get, path = "/console/", operation_id = "console", tag = "console",
    responses((status = 200, description = "The console page", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    serve("index.html")
}

/// Console assets.
#[utoipa::path(get, path = "/console/{file}", operation_id = "consoleAsset", tag = "console",
    params(("file" = String, Path, description = "Asset name")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/html"), (String = "text/javascript"), (String = "text/css"))),
        (status = 404, description = "`console_file_not_found`", body = crate::http::error::ErrorBody),
    ))]
pub async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

/// Redirects to the console.
#[utoipa::path(get, path = "/", operation_id = "root", tag = "console",
    responses((status = 307, description = "To `/console/`")))]
pub async fn root_to_console() -> Redirect {
    Redirect::temporary("/console/")
}

/// Redirects to the console.
#[utoipa::path(get, path = "/console", operation_id = "consoleRedirect", tag = "console",
    responses((status = 307, description = "To `/console/`")))]
pub async fn to_console() -> Redirect {
    Redirect::temporary("/console/")
}
