//! Reads never wait behind writes: with the write path's applier held inside a write
//! (by `ServiceOptions::apply_hook`), lookups, health checks, profile cards and
//! previews still answer — on a runtime with a single worker thread, so a handler that
//! blocked its worker on the write would starve every other request and fail this.
//!
//! Each read is checked to answer *while* the write is still held (the write request
//! has not completed at that moment); the bound on each wait only keeps a broken
//! build from hanging forever, it is not a timing threshold. The bound is kept by a
//! plain thread, not by tokio's timer: with the only worker blocked, the runtime's
//! timer would not fire.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use segd::clock::ManualClock;
use segd::engine::{EngineOptions, Mutation};
use segd::http::auth::Keys;
use segd::http::{router, ServiceOptions, ServiceState};
use segd::persist::wal::FsyncPolicy;
use segd::persist::{Database, DatabaseOptions};
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WRITE: &str = "write-key-1";
const READ: &str = "read-key-1";
const ADMIN: &str = "admin-key-1";
const NOW_MS: i64 = 1_750_000_000_000;
/// Only so that a broken build fails instead of hanging.
const BOUND: Duration = Duration::from_secs(10);

/// Holds the applier in the hook at the first mutation of the armed kind.
#[derive(Default)]
struct Hold {
    /// The mutation kind (`Mutation::kind_name`) to hold, once.
    armed: Mutex<Option<&'static str>>,
    entered: Mutex<Option<oneshot::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
    /// Set by the hook when it lets the applier go on.
    released: AtomicBool,
}

impl Hold {
    /// Arms the hold for the next mutation of `kind`: returns (resolves when the
    /// applier is held, sends to let it go on).
    fn arm(&self, kind: &'static str) -> (oneshot::Receiver<()>, mpsc::Sender<()>) {
        let (entered, on_entered) = oneshot::channel();
        let (release, on_release) = mpsc::channel();
        *self.entered.lock().unwrap() = Some(entered);
        *self.release.lock().unwrap() = Some(on_release);
        self.released.store(false, Ordering::SeqCst);
        *self.armed.lock().unwrap() = Some(kind);
        (on_entered, release)
    }

    /// The hook: runs on the applier thread before each mutation.
    fn hook(&self, mutation: &Mutation) {
        {
            let mut armed = self.armed.lock().unwrap();
            if *armed != Some(mutation.kind_name()) {
                return;
            }
            *armed = None;
        }
        if let Some(entered) = self.entered.lock().unwrap().take() {
            let _ = entered.send(());
        }
        let release = self.release.lock().unwrap().take();
        if let Some(release) = release {
            // Bounded, so a failed test does not leave the applier stuck.
            let _ = release.recv_timeout(Duration::from_secs(60));
        }
        self.released.store(true, Ordering::SeqCst);
    }
}

struct Service {
    router: Router,
    hold: Arc<Hold>,
    dir: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keys() -> Keys {
    Keys {
        write: vec![WRITE.into()],
        read: vec![READ.into()],
        admin: vec![ADMIN.into()],
    }
}

/// The service with a database (so the acknowledger thread is in the path too) and
/// the hold hook; profiles u1..u4 (u1, u2 on plan pro) and a segment `pro`.
async fn service(name: &str) -> Service {
    let dir = std::env::temp_dir().join(format!(
        "segd-reads-never-wait-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = EngineOptions {
        shards: 4,
        ..EngineOptions::default()
    };
    let (database, _) = Database::open(
        DatabaseOptions {
            fsync: FsyncPolicy::Never,
            engine,
            ..DatabaseOptions::new(&dir)
        },
        ManualClock::new(NOW_MS),
    )
    .unwrap();
    let database = Arc::new(database);
    let hold = Arc::new(Hold::default());
    let hook = {
        let hold = hold.clone();
        Arc::new(move |mutation: &Mutation| hold.hook(mutation))
    };
    let state = ServiceState::new(
        database.engine().clone(),
        ServiceOptions {
            keys: keys(),
            database: Some(database),
            apply_hook: Some(hook),
            ..ServiceOptions::default()
        },
    );
    let service = Service {
        router: router(state),
        hold,
        dir,
    };
    let batch: Vec<Value> = [("u1", "pro"), ("u2", "pro"), ("u3", "free"), ("u4", "free")]
        .into_iter()
        .map(|(user, plan)| {
            json!({"type": "identify", "userId": user, "traits": {"plan": plan, "age": 30}})
        })
        .collect();
    let (status, answer) = call(
        &service.router,
        ingest("/v1/batch", json!({ "batch": batch })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = call(
        &service.router,
        with_key(
            ADMIN,
            Method::POST,
            "/v1/segments",
            Some(json!({"name": "pro", "rule": plan_is("pro")})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    service
}

fn plan_is(plan: &str) -> Value {
    json!({"kind": "compare", "trait": "plan", "op": "=", "value": plan})
}

fn with_key(key: &str, method: Method, path: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"));
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

fn get(key: &str, path: &str) -> Request<Body> {
    with_key(key, Method::GET, path, None)
}

fn ingest(path: &str, body: Value) -> Request<Body> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{WRITE}:"));
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let (status, _, bytes) = common::openapi::oneshot_checked(router, request).await;
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, json)
}

/// Awaits `future`, panicking if it has not finished after [`BOUND`].
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    let (expire, expired) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(BOUND);
        let _ = expire.send(());
    });
    tokio::select! {
        value = future => value,
        _ = expired => panic!("{what}: no answer within {BOUND:?}"),
    }
}

/// Sends `request` from a task on the runtime's worker (not on the test's own thread).
fn spawn_call(router: &Router, request: Request<Body>) -> JoinHandle<(StatusCode, Value)> {
    let router = router.clone();
    tokio::spawn(async move { call(&router, request).await })
}

/// A write held by the applier hook: reads are sent while it is held, then it is let go.
struct HeldWrite<'a> {
    service: &'a Service,
    write: JoinHandle<(StatusCode, Value)>,
    release: mpsc::Sender<()>,
}

impl<'a> HeldWrite<'a> {
    /// Arms the hold for the next mutation of `kind`, sends `request` and waits until
    /// the applier holds it.
    async fn start(
        service: &'a Service,
        kind: &'static str,
        request: Request<Body>,
    ) -> HeldWrite<'a> {
        let (entered, release) = service.hold.arm(kind);
        let write = spawn_call(&service.router, request);
        bounded(
            "waiting for the applier to reach the held mutation",
            entered,
        )
        .await
        .expect("the hook was dropped");
        HeldWrite {
            service,
            write,
            release,
        }
    }

    /// Sends `request` while the write is held and returns its answer, failing if the
    /// write completed (or the applier was let go) before the answer came.
    async fn read(&self, request: Request<Body>) -> (StatusCode, Value) {
        let what = format!("{} {}", request.method(), request.uri());
        let answer = bounded(
            &format!("{what} while a write was held"),
            spawn_call(&self.service.router, request),
        )
        .await
        .unwrap();
        assert!(
            !self.write.is_finished() && !self.service.hold.released.load(Ordering::SeqCst),
            "the write was no longer held when {what} answered"
        );
        answer
    }

    /// Lets the write go on and returns its answer (`what` names it if none comes).
    async fn release(self, what: &str) -> (StatusCode, Value) {
        self.release.send(()).unwrap();
        bounded(what, self.write).await.unwrap()
    }
}

fn healthz() -> Request<Body> {
    Request::builder()
        .uri("/healthz")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn lookups_answer_while_a_batch_is_held_mid_apply() {
    let service = service("batch").await;
    let held = HeldWrite::start(
        &service,
        "messages",
        ingest(
            "/v1/batch",
            json!({"batch": [
                {"type": "identify", "userId": "u9", "traits": {"plan": "pro"}},
                {"type": "identify", "userId": "u3", "traits": {"plan": "pro"}},
            ]}),
        ),
    )
    .await;

    let (status, answer) = held.read(get(READ, "/v1/segments/pro/members/u1")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["member"], json!(true));
    let (status, answer) = held.read(get(READ, "/v1/segments/pro/members/u3")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["member"], json!(false), "the held write is visible");
    let (status, answer) = held.read(healthz()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = held.read(get(READ, "/v1/profiles/u1")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["traits"]["plan"], json!("pro"));
    let (status, answer) = held.read(get(READ, "/v1/profiles/u9")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the held write is visible: {answer}"
    );
    let (status, answer) = held
        .read(with_key(
            ADMIN,
            Method::POST,
            "/v1/segments/preview",
            Some(json!({"rule": plan_is("pro")})),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["count"], json!(2));

    let (status, answer) = held.release("the write once released").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for profile in ["u9", "u3"] {
        let (status, answer) = call(
            &service.router,
            get(READ, &format!("/v1/segments/pro/members/{profile}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["member"], json!(true), "{profile}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn lookups_answer_while_a_segment_creation_is_held() {
    let service = service("create").await;
    let held = HeldWrite::start(
        &service,
        "create_segment",
        with_key(
            ADMIN,
            Method::POST,
            "/v1/segments",
            Some(json!({"name": "free", "rule": plan_is("free")})),
        ),
    )
    .await;

    let (status, answer) = held.read(get(READ, "/v1/segments/pro/members/u2")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["member"], json!(true));
    let (status, answer) = held.read(get(READ, "/v1/profiles/u3")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = held.read(get(READ, "/v1/segments/free/members/u3")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the held creation is visible: {answer}"
    );
    let (status, answer) = held.read(healthz()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (status, answer) = held.release("the creation once released").await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = call(&service.router, get(READ, "/v1/segments/free/members/u3")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["member"], json!(true));
}
