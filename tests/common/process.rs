//! `segd serve` as a real child process on a free loopback port: spawning it, waiting
//! until it is ready, stopping it with SIGTERM, and killing it when dropped. Every wait
//! has a deadline.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A loopback address no one listens on (yet).
pub fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The `segd` binary of this build.
pub fn segd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_segd"))
}

/// A `segd serve` child; killed (and reaped) when dropped.
pub struct ServeProcess {
    pub child: Child,
    pub address: SocketAddr,
}

impl ServeProcess {
    /// Spawns `segd serve --listen <a free address> --data-dir <dir>` followed by `args`;
    /// `configure` sets up the rest (environment, output) before the spawn.
    pub fn spawn(dir: &Path, args: &[&str], configure: impl FnOnce(&mut Command)) -> ServeProcess {
        let address = free_address();
        let mut command = segd();
        command
            .args(["serve", "--listen", &address.to_string(), "--data-dir"])
            .arg(dir)
            .args(args);
        configure(&mut command);
        let child = command.spawn().unwrap();
        ServeProcess { child, address }
    }

    /// Waits up to 60 s, polling every 100 ms, until `ready(address)` holds.
    pub fn wait_ready(&self, ready: impl Fn(SocketAddr) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(self.address) {
            assert!(Instant::now() < deadline, "server did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM (graceful shutdown: final snapshot) and waits up to 30 s for the
    /// exit; `None` if it did not exit by then.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close` to a server on loopback; the status
/// and the JSON body of the answer (`null` when there is none; chunked bodies are read
/// as the JSON between the chunk sizes).
pub fn http_json(
    address: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&serde_json::Value>,
    read_timeout: std::time::Duration,
) -> std::io::Result<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(5))?;
    stream.set_read_timeout(Some(read_timeout))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let json_text = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
        (Some(start), Some(end)) if end >= start => &body[start..=end],
        _ => "null",
    };
    Ok((
        status,
        serde_json::from_str(json_text).unwrap_or(serde_json::Value::Null),
    ))
}
