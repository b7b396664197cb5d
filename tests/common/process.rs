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
