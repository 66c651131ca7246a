//! A real `nats-server` for the cluster tests: JetStream on, its store in
//! a fresh temporary directory, on a free loopback port; restartable on the
//! same port and directory; killed (SIGKILL) and reaped on drop.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a panic fails the test that called it, with its message"
)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary: on PATH, or where Debian's package puts it
/// (`/usr/sbin`, not on a non-root user's PATH).
pub fn binary() -> Option<PathBuf> {
    if crate::on_path("nats-server") {
        return Some(PathBuf::from("nats-server"));
    }
    let sbin = PathBuf::from("/usr/sbin/nats-server");
    sbin.exists().then_some(sbin)
}

/// One `nats-server` process (or none, between [`NatsProc::stop`] and
/// [`NatsProc::restart`]).
pub struct NatsProc {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl NatsProc {
    /// Start on a free loopback port; waits (up to 10 s) until it accepts.
    pub fn start() -> NatsProc {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("sockchat-nats-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("nats store dir");
        let mut n = NatsProc {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        n.restart();
        n
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Kill the server (SIGKILL: no goodbye to its clients).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send `sig` to the server (`SIGSTOP`/`SIGCONT`: a NATS server that
    /// stops answering for a moment, its connections kept).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Start (again) on the same port and store; waits until it accepts.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(binary().expect("nats-server installed"))
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .arg("-sd")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept on {} within 10 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsProc {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
