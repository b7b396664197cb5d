//! `segd serve`/`segd import` as real processes on 127.0.0.1: keys never appear in their
//! output (banner included), a second process on a locked data directory exits naming
//! the holder's pid, every file and directory they create is owner-only (0600/0700), and
//! an open server refuses to listen beyond loopback without `--allow-open`. Bounded:
//! every wait has a deadline.

mod common;

use common::process::{free_address, segd, ServeProcess};
use common::temp_data_dir;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

const WRITE: &str = "wk-never-printed-1234";
const READ: &str = "rk-never-printed-5678";
const ADMIN: &str = "ak-never-printed-9012";

/// A raw HTTP/1.1 request; returns the status.
fn request(address: SocketAddr, method: &str, path: &str, extra: &str, body: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return 0;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0)
}

/// A `segd serve` child with debug logging into `log`.
struct Server {
    process: ServeProcess,
    log: PathBuf,
}

impl std::ops::Deref for Server {
    type Target = ServeProcess;

    fn deref(&self) -> &ServeProcess {
        &self.process
    }
}

impl Server {
    fn start(dir: &Path, log: PathBuf) -> Server {
        let keys = [
            "--write-key",
            WRITE,
            "--read-key",
            READ,
            "--admin-key",
            ADMIN,
        ];
        let args = [&keys[..], &["--shards", "2", "--wal-fsync", "always"]].concat();
        let process = ServeProcess::spawn(dir, &args, |command| {
            command
                .env("RUST_LOG", "debug")
                .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
                .stderr(Stdio::from(
                    std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
                ));
        });
        process.wait_ready(|address| request(address, "GET", "/readyz", "", "") == 200);
        Server { process, log }
    }

    /// SIGTERM (graceful: final snapshot), then wait.
    fn stop(mut self) -> String {
        assert!(self.process.terminate().is_some(), "server did not stop");
        std::fs::read_to_string(&self.log).unwrap()
    }
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn keys_are_never_printed_and_the_data_directory_is_locked_and_private() {
    let dir = temp_data_dir("security", "lock");
    let log = std::env::temp_dir().join(format!("segd-security-{}.log", std::process::id()));
    let server = Server::start(&dir, log.clone());
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE}:"))
    };
    let status = request(
        server.address,
        "POST",
        "/v1/identify",
        &format!("Authorization: Basic {basic}\r\nContent-Type: application/json\r\n"),
        r#"{"userId": "u1", "traits": {"plan": "pro"}}"#,
    );
    assert_eq!(status, 200);
    // A wrong key is logged about without the key.
    let status = request(
        server.address,
        "GET",
        "/v1/segments",
        "Authorization: Bearer ak-wrong-guess-0000\r\n",
        "",
    );
    assert_eq!(status, 401);

    // A second server on the same directory exits at once, naming the holder.
    let second = segd()
        .args([
            "serve",
            "--listen",
            &free_address().to_string(),
            "--data-dir",
        ])
        .arg(&dir)
        .args(["--admin-key", ADMIN])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let text = output_text(&second);
    assert!(
        text.contains(&format!("pid {}", server.child.id())),
        "second serve: {text}"
    );
    // So does an import.
    let csv = dir.with_extension("csv");
    std::fs::write(&csv, "userId,plan\nu2,free\n").unwrap();
    let import = segd()
        .arg("import")
        .arg(&csv)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!import.status.success());
    let text = output_text(&import);
    assert!(
        text.contains(&format!("pid {}", server.child.id())),
        "import: {text}"
    );
    // The server is unharmed: its data is still there.
    let status = request(
        server.address,
        "GET",
        "/v1/profiles/u1",
        &format!("Authorization: Bearer {READ}\r\n"),
        "",
    );
    assert_eq!(status, 200);
    let status = request(
        server.address,
        "POST",
        "/v1/admin/snapshot",
        &format!("Authorization: Bearer {ADMIN}\r\n"),
        "",
    );
    assert_eq!(status, 200);
    let output = server.stop();
    for key in [WRITE, READ, ADMIN, "ak-wrong-guess-0000"] {
        assert!(!output.contains(key), "a key was printed:\n{output}");
    }
    assert!(output.contains("segd is ready"), "banner: {output}");

    // Once the server is gone, the import runs.
    let import = segd()
        .arg("import")
        .arg(&csv)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", output_text(&import));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![dir.clone()];
        let mut files = 0;
        while let Some(path) = stack.pop() {
            let metadata = std::fs::metadata(&path).unwrap();
            let mode = metadata.permissions().mode() & 0o777;
            if metadata.is_dir() {
                assert_eq!(mode, 0o700, "{}", path.display());
                for entry in std::fs::read_dir(&path).unwrap() {
                    stack.push(entry.unwrap().path());
                }
            } else {
                files += 1;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
        assert!(files >= 3, "WAL, snapshot files and the lock file: {files}");
    }
    let _ = std::fs::remove_file(&csv);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_open_server_stays_on_loopback_unless_allowed() {
    let dir = temp_data_dir("security", "open");
    let refused = segd()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let text = output_text(&refused);
    assert!(text.contains("--allow-open"), "{text}");
    assert!(!dir.exists(), "refused before touching the data directory");
}
