//! Harness for end-to-end tests: finds and spawns the real binaries, and
//! speaks the protocol over real loopback sockets.
//!
//! - [`bin`]: path of a built binary (`target/debug/NAME`).
//! - [`ServerProc`]: the real `sockchat-server` on `127.0.0.1:0`, its
//!   address parsed from the stdout contract line, killed on drop.
//! - [`FramedClient`]: a minimal framed-protocol client (preamble, hello,
//!   send/recv with timeouts).
//! - [`TextClient`]: a raw TCP line client, exactly what `nc` does.
//! - [`Plain`]: a child process driven through pipes (stdin lines in,
//!   stdout lines out), e.g. `sockchat --plain`, killed on drop.
//! - [`udp_raw::RawUdp`]: a minimal UDP client (hello, cookie, datagrams)
//!   built from PROTOCOL.md and the shared datagram codec.
//! - [`tmux::Tmux`]: a private tmux server to drive the terminal UI.
//! - [`proc_status_kib`]: a process's peak or current memory (`VmHWM`,
//!   `VmRSS`); [`sha256sum`]: the reference SHA-256 for test senders.
//! - [`nats::NatsProc`]: a real `nats-server` (JetStream, its own port and
//!   store) for the cluster tests, restartable.
//! - [`netns`]: network namespaces deleted on drop, `ip`, and processes
//!   started inside one (pulled cable, kernel drops, discovery).
//! - [`scratch`] / [`scratch_dir`] / [`config_file`]: test files in one
//!   directory per test process, removed when it exits.
//! - [`require!`] / [`require`]: a missing host precondition (root, tmux,
//!   `ip`, `::1`) fails under CI and skips with its reason locally
//!   ([`precondition`]).
//!
//! Build the binaries first: `cargo build --workspace --bins` (`./test.sh`
//! does it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a panic fails the test that called it, with its message"
)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sockchat_shared::codec;
use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Default bound for one expected event in these helpers.
pub mod nats;
pub mod netns;
pub mod precondition;
pub mod random_file;
pub mod tmux;
pub mod udp_raw;
pub use precondition::{have_ipv6_loopback, in_ci, is_root, on_path, require};

pub const STEP: Duration = Duration::from_secs(5);

/// The nick in a text-mode welcome line: `* welcome NICK: you are in ROOM
/// on SERVER (...)` (`shared::text::render`), or the older server shape
/// `* welcome to SERVER: you are NICK in ROOM (...)` until the server uses
/// the shared renderer.
pub fn welcome_nick(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("* welcome ")?;
    if rest.starts_with("to ") {
        return rest.split(" you are ").nth(1)?.split(' ').next();
    }
    rest.split(':').next()
}

/// Path of a built binary of this workspace (`sockchat-server`,
/// `sockchat`). Looks next to the running test executable
/// (`target/debug/deps/..` -> `target/debug/NAME`), then in
/// `$CARGO_TARGET_DIR/debug`. Panics with the fix when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe.parent()
    {
        // Test executables live in target/<profile>/deps.
        let profile_dir = if deps.ends_with("deps") {
            deps.parent().map(PathBuf::from)
        } else {
            Some(deps.to_path_buf())
        };
        if let Some(d) = profile_dir {
            tried.push(d.join(name));
        }
    }
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        tried.push(PathBuf::from(t).join("debug").join(name));
    }
    tried.push(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/debug")
            .join(name),
    );
    for p in &tried {
        if p.is_file() {
            return p.clone();
        }
    }
    panic!(
        "binary `{name}` not found (looked in {tried:?}). \
         Build the binaries first: `cargo build --workspace --bins` (./test.sh does this)"
    );
}

/// This process's scratch directory, once created (read again by the
/// `atexit` hook that removes it).
static SCRATCH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Where this test process keeps its files: `$TMPDIR/sockchat-tests-<pid>`,
/// created on first use and removed when the process exits (an `atexit`
/// hook: the test harness has no teardown, and statics are never dropped).
/// A run that was killed leaves its directory behind; the next run removes
/// every such directory whose process is gone, so `/tmp` does not fill up
/// with configs, nicks files and TLS keys run after run.
fn scratch_root() -> &'static std::path::Path {
    SCRATCH.get_or_init(|| {
        sweep_stale_scratch();
        let root = std::env::temp_dir().join(format!("sockchat-tests-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("create the tests' scratch directory");
        extern "C" fn remove_scratch() {
            if let Some(root) = SCRATCH.get() {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        // SAFETY: registers a plain function with no captured state; it runs
        // once, at exit, after the tests (and their servers, killed on drop).
        unsafe { libc::atexit(remove_scratch) };
        root
    })
}

/// Remove `sockchat-tests-<pid>` directories whose process no longer exists.
fn sweep_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sockchat-tests-"))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A path for test file or directory `name` in this process's scratch
/// directory (see [`scratch_root`]); nothing is created at the path itself.
pub fn scratch(name: &str) -> PathBuf {
    scratch_root().join(name)
}

/// A fresh, empty directory `name` in this process's scratch directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = scratch(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a test directory");
    d
}

/// Write a config file for one test: `text` (TOML) in this process's
/// scratch directory, named after `tag` (unique per test).
pub fn config_file(tag: &str, text: &str) -> PathBuf {
    let p = scratch(&format!("{tag}.toml"));
    std::fs::write(&p, text).expect("write test config");
    p
}

/// The real `sockchat-server` process, listening on `127.0.0.1:<random>`.
/// Killed (SIGKILL) and reaped on drop if still running.
pub struct ServerProc {
    child: Child,
    /// The TCP address from the `listening on ADDR (tcp)` stdout line.
    pub addr: SocketAddr,
    /// Every `listening on ...` line (tcp, tls, udp).
    pub listen_lines: Vec<String>,
    /// The `SHA256:...` of the `tls certificate ...` line (TLS on).
    pub tls_fingerprint: Option<String>,
    stderr: Arc<Mutex<String>>,
}

impl ServerProc {
    /// The UDP address from the `listening on ADDR (udp)` stdout line.
    pub fn udp_addr(&self) -> SocketAddr {
        self.listen_addr("udp")
    }

    /// The TLS address from the `listening on ADDR (tls)` stdout line.
    pub fn tls_addr(&self) -> SocketAddr {
        self.listen_addr("tls")
    }

    /// The address of the first `listening on ADDR (KIND)` line.
    fn listen_addr(&self, kind: &str) -> SocketAddr {
        let tail = format!(" ({kind})");
        self.listen_lines
            .iter()
            .find_map(|l| l.strip_prefix("listening on ")?.strip_suffix(&tail))
            .unwrap_or_else(|| panic!("no `({kind})` listening line in {:?}", self.listen_lines))
            .parse()
            .unwrap_or_else(|e| panic!("{kind} address: {e}"))
    }

    /// Start with `--listen 127.0.0.1:0` plus `extra` arguments. Waits (up
    /// to 10 s) for the `listening on ... (tcp)` line.
    pub fn start(extra: &[&str]) -> ServerProc {
        Self::start_args(&["--listen", "127.0.0.1:0"], extra)
    }

    /// Start with `--listen 127.0.0.1:0 --config FILE` (FILE holding
    /// `config`, written by [`config_file`] under `tag`) plus `extra`.
    pub fn start_with_config(tag: &str, config: &str, extra: &[&str]) -> ServerProc {
        let p = config_file(tag, config);
        let mut args = vec!["--config", p.to_str().expect("utf-8 temp path")];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// Start with exactly `base` + `extra` arguments (no implicit --listen).
    pub fn start_args(base: &[&str], extra: &[&str]) -> ServerProc {
        Self::start_cmd(base, extra, |_| {})
    }

    /// Start with `--listen 127.0.0.1:0` + `extra` and RLIMIT_NOFILE set to
    /// `limit` in the child (to provoke EMFILE on purpose).
    pub fn start_with_fd_limit(limit: u64, extra: &[&str]) -> ServerProc {
        Self::start_cmd(&["--listen", "127.0.0.1:0"], extra, |cmd| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec here.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
    }

    /// Start with `base` + `extra`, letting `configure` adjust the command.
    pub fn start_cmd(
        base: &[&str],
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> ServerProc {
        Self::start_with_stderr(base, extra, configure, Stdio::piped())
    }

    /// Like [`ServerProc::start_cmd`] with the server's stderr going to
    /// `stderr` (not captured: [`ServerProc::stderr`] stays empty unless
    /// it is `Stdio::piped()`).
    pub fn start_with_stderr(
        base: &[&str],
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
        stderr: Stdio,
    ) -> ServerProc {
        let mut cmd = Command::new(bin("sockchat-server"));
        configure(&mut cmd);
        let mut child = cmd
            .args(base)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn sockchat-server");
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let out = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut listen_lines = Vec::new();
        let mut addr = None;
        while addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        listen_lines.push(line.clone());
                        // A TLS-only server has no plain TCP line.
                        if let Some(a) = rest
                            .strip_suffix(" (tcp)")
                            .or_else(|| rest.strip_suffix(" (tls)"))
                        {
                            addr = a.parse().ok();
                        }
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sockchat-server did not print `listening on ... (tcp)` within 10 s; stderr:\n{}",
                        stderr.lock().unwrap_or_else(|p| p.into_inner())
                    );
                }
            }
        }
        // Give the other lines (tls, udp) a moment without blocking on them.
        let mut tls_fingerprint = None;
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            if line.starts_with("listening on ") {
                listen_lines.push(line);
            } else if let Some(rest) = line.strip_prefix("tls certificate ") {
                tls_fingerprint = rest.split(' ').next().map(str::to_string);
            }
        }
        ServerProc {
            child,
            addr: addr.expect("parsed above"),
            listen_lines,
            tls_fingerprint,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal (e.g. `libc::SIGTERM`) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Wait for the process to exit, up to `d`.
    pub fn wait_timeout(&mut self, d: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + d;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server logged to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until stderr contains `needle` (up to `d`); returns whether it did.
    pub fn wait_stderr(&self, needle: &str, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A framed-protocol client over a real TCP socket.
pub struct FramedClient {
    pub stream: TcpStream,
    buf: BytesMut,
    /// The nick the server gave us in `Welcome`.
    pub nick: String,
    /// The server's 5-byte preamble has been read.
    preamble_seen: bool,
}

impl FramedClient {
    /// Connect, send the preamble, check the server's preamble. No hello yet.
    pub async fn connect_raw(addr: SocketAddr) -> std::io::Result<FramedClient> {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(&sockchat_shared::proto::preamble())
            .await?;
        Ok(FramedClient {
            stream,
            buf: BytesMut::new(),
            nick: String::new(),
            preamble_seen: false,
        })
    }

    /// [`Self::connect_raw`] from the local address `from` (another
    /// loopback address such as 127.0.0.2: a second "host" for per-address
    /// rules).
    pub async fn connect_raw_from(addr: SocketAddr, from: IpAddr) -> std::io::Result<FramedClient> {
        let sock = match from {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.bind(SocketAddr::new(from, 0))?;
        let mut stream = sock.connect(addr).await?;
        stream
            .write_all(&sockchat_shared::proto::preamble())
            .await?;
        Ok(Self::from_stream(stream))
    }

    /// Wrap a connected stream that has already sent whatever preamble
    /// the test wants (a wrong one, say); reads start with the server's
    /// preamble.
    pub fn from_stream(stream: TcpStream) -> FramedClient {
        FramedClient {
            stream,
            buf: BytesMut::new(),
            nick: String::new(),
            preamble_seen: false,
        }
    }

    /// Connect, hello with `nick` ("" = guest) and wait for `Welcome`.
    /// Panics (test helper) if anything else comes first or it times out.
    pub async fn connect(addr: SocketAddr, nick: &str) -> FramedClient {
        let mut c = Self::connect_raw(addr).await.expect("connect");
        c.send(&ClientMsg::Hello { nick: nick.into() }).await;
        match c.recv().await {
            ServerMsg::Welcome { nick, .. } => c.nick = nick,
            other => panic!("expected Welcome, got {other:?}"),
        }
        c
    }

    /// Connect from local address `from` (a 127.0.0.x playing another
    /// host) and hello with `nick`: the welcomed client, or the refusal's
    /// code and text. Panics (test helper) on anything else.
    pub async fn hello_from(
        addr: SocketAddr,
        from: IpAddr,
        nick: &str,
    ) -> Result<FramedClient, (ErrorCode, String)> {
        let mut c = Self::connect_raw_from(addr, from).await.expect("connect");
        c.send(&ClientMsg::Hello { nick: nick.into() }).await;
        match c.recv().await {
            ServerMsg::Welcome { nick, .. } => {
                c.nick = nick;
                Ok(c)
            }
            ServerMsg::Error { code, text } => Err((code, text)),
            other => panic!("expected Welcome or Error, got {other:?}"),
        }
    }

    /// Send one message (panics on a write error: use `send_raw` to test
    /// errors).
    pub async fn send(&mut self, msg: &ClientMsg) {
        self.stream
            .write_all(&codec::client_frame(msg))
            .await
            .expect("write frame");
    }

    /// Write raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Next server message, skipping the server preamble; panics after
    /// [`STEP`] or on EOF/error.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.recv_timeout(STEP).await {
            Ok(Some(m)) => m,
            Ok(None) => panic!("connection closed while waiting for a message"),
            Err(e) => panic!("no message: {e}"),
        }
    }

    /// Next message within `d`: `Ok(None)` on EOF, `Err` on timeout or an
    /// I/O / decode error.
    pub async fn recv_timeout(&mut self, d: Duration) -> std::io::Result<Option<ServerMsg>> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if !self.preamble_seen {
                if self.buf.len() >= 5 {
                    codec::check_preamble(&self.buf[..5])
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    let _ = self.buf.split_to(5);
                    self.preamble_seen = true;
                    continue;
                }
            } else if let Some(p) = codec::decode_frame(&mut self.buf, 16 * 1024 * 1024)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
            {
                return codec::decode_server(&p)
                    .map(Some)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
            self.buf.reserve(4096);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out waiting for a message",
                    ));
                }
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Read while messages keep coming (each within `quiet`); panics if
    /// one matches `forbidden`: proves nothing of that kind arrives.
    pub async fn expect_none(&mut self, quiet: Duration, forbidden: impl Fn(&ServerMsg) -> bool) {
        loop {
            match self.recv_timeout(quiet).await {
                Ok(Some(m)) if forbidden(&m) => panic!("{} got {m:?}", self.nick),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }

    /// Receive until `pred` matches (skipping other messages); panics
    /// after `STEP`.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_timeout(left).await {
                Ok(Some(m)) if pred(&m) => return m,
                Ok(Some(_)) => {}
                Ok(None) => panic!("EOF before the expected message"),
                Err(e) => panic!("expected message not received: {e}"),
            }
        }
    }

    /// `Oper` with `password`, then wait for `you are a server operator`.
    pub async fn oper(&mut self, password: &str) {
        self.send(&ClientMsg::Oper {
            password: password.into(),
        })
        .await;
        self.recv_until(
            |m| matches!(m, ServerMsg::Notice { text } if text == "you are a server operator"),
        )
        .await;
    }

    /// Wait for the `Notice` that reads exactly `text` (skipping other
    /// messages); panics after [`STEP`].
    pub async fn expect_notice(&mut self, text: &str) {
        self.recv_until(|m| matches!(m, ServerMsg::Notice { text: t } if t == text))
            .await;
    }

    /// The next `Error` (skipping other messages): its code and text;
    /// panics after [`STEP`].
    pub async fn next_error(&mut self) -> (ErrorCode, String) {
        match self
            .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
            .await
        {
            ServerMsg::Error { code, text } => (code, text),
            other => unreachable!("recv_until returned {other:?}"),
        }
    }

    /// Say `text` in the current room.
    pub async fn say(&mut self, text: &str) {
        self.send(&ClientMsg::Say {
            room: String::new(),
            text: text.into(),
        })
        .await;
    }
}

/// A raw TCP line client: what `nc` does.
pub struct TextClient {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl TextClient {
    pub async fn connect(addr: SocketAddr) -> TextClient {
        let s = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = s.into_split();
        TextClient {
            reader: tokio::io::BufReader::new(r),
            writer: w,
        }
    }

    /// Send one line (a `\n` is appended).
    pub async fn line(&mut self, l: &str) {
        self.writer
            .write_all(format!("{l}\n").as_bytes())
            .await
            .expect("write line");
    }

    /// Next line without its `\n`, `Ok(None)` on EOF, `Err` on timeout/error.
    pub async fn read_line_timeout(&mut self, d: Duration) -> std::io::Result<Option<String>> {
        let mut s = String::new();
        match tokio::time::timeout(d, self.reader.read_line(&mut s)).await {
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out waiting for a line",
            )),
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(_)) => Ok(Some(s.trim_end_matches('\n').to_string())),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Next line; panics after [`STEP`] or on EOF.
    pub async fn read_line(&mut self) -> String {
        match self.read_line_timeout(STEP).await {
            Ok(Some(l)) => l,
            Ok(None) => panic!("EOF while waiting for a line"),
            Err(e) => panic!("no line: {e}"),
        }
    }

    /// Read lines until one equals `want`; returns the lines skipped.
    pub async fn expect_line(&mut self, want: &str) -> Vec<String> {
        self.expect_line_within(want, STEP).await
    }

    /// [`TextClient::expect_line`] with its own bound.
    pub async fn expect_line_within(&mut self, want: &str, d: Duration) -> Vec<String> {
        let mut skipped = Vec::new();
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_line_timeout(left).await {
                Ok(Some(l)) if l == want => return skipped,
                Ok(Some(l)) => skipped.push(l),
                Ok(None) => panic!("EOF waiting for {want:?}; got {skipped:?}"),
                Err(e) => panic!("{e} waiting for {want:?}; got {skipped:?}"),
            }
        }
    }

    /// Read lines until one starts with `prefix`; returns it.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let mut skipped = Vec::new();
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_line_timeout(left).await {
                Ok(Some(l)) if l.starts_with(prefix) => return l,
                Ok(Some(l)) => skipped.push(l),
                Ok(None) => panic!("EOF waiting for {prefix:?}; got {skipped:?}"),
                Err(e) => panic!("{e} waiting for {prefix:?}; got {skipped:?}"),
            }
        }
    }

    /// The welcome line and own join line that start every text session;
    /// returns the guest nick.
    pub async fn welcome(&mut self) -> String {
        let w = self.expect_prefix("* welcome ").await;
        let nick = welcome_nick(&w).unwrap_or_default().to_string();
        self.expect_line(&format!("* {nick} joined lobby")).await;
        nick
    }

    /// Assert nothing arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(Some(l)) = self.read_line_timeout(d).await {
            panic!("expected silence, got {l:?}");
        }
    }

    pub fn into_parts(
        self,
    ) -> (
        tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        (self.reader, self.writer)
    }
}

/// A test server in-process on 127.0.0.1:0 with `tweak` applied to the
/// default settings.
pub async fn start_server(
    tweak: impl FnOnce(&mut sockchat_server::Settings),
) -> sockchat_server::ServerHandle {
    let mut s = sockchat_server::Settings::with_listen("127.0.0.1:0".parse().expect("addr"));
    // Text users are detected faster in tests.
    s.config.server.detect_timeout_ms = 100;
    // Test clients rarely close on their own after the notice: do not wait
    // the full default grace for them.
    s.config.server.shutdown_grace_secs = 1;
    tweak(&mut s);
    sockchat_server::start(s).await.expect("start server")
}

/// Run `test` against [`start_server`]`(tweak)`, all within `limit`, then
/// shut the server down gracefully (that must complete too).
pub async fn with_server(
    limit: Duration,
    tweak: impl FnOnce(&mut sockchat_server::Settings),
    test: impl AsyncFnOnce(&sockchat_server::ServerHandle),
) {
    tokio::time::timeout(limit, async {
        let srv = start_server(tweak).await;
        test(&srv).await;
        srv.shutdown().await.expect("shutdown");
    })
    .await
    .expect("test timed out");
}

/// A `/proc/PID/status` size field in KiB (`VmHWM`: peak resident memory,
/// `VmRSS`: current), for the tests that bound a process's memory.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// SHA-256 by the reference implementation (`sha256sum`), for test peers
/// that send files: the client crate's own hashing would hide a bug in it.
pub fn sha256sum(data: &[u8]) -> [u8; 32] {
    use std::io::Write;
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write to sha256sum");
    let out = c.wait_with_output().expect("sha256sum");
    let hex = String::from_utf8(out.stdout).expect("hex");
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digit");
    }
    d
}

/// A child process driven through pipes: lines written to its stdin, its
/// stdout lines collected on a channel by a reader thread. Used for
/// `sockchat --plain` (TCP, UDP, inside a network namespace). Killed on
/// drop if still running; every wait is bounded by `step`.
pub struct Plain {
    /// For failure messages (the arguments it was started with).
    pub name: String,
    pub child: Child,
    /// `None` once closed (end of input for the child).
    pub stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every stdout line received so far, in order.
    pub seen: Vec<String>,
    /// Bound for one [`Plain::expect`] and for [`Plain::finish`].
    pub step: Duration,
}

/// `sockchat ARGS` that never picks up the user's config file.
pub fn sockchat_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("sockchat"));
    cmd.args(args)
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME");
    cmd
}

impl Plain {
    /// Spawn `cmd` with piped stdin and stdout (stderr as `cmd` says).
    pub fn spawn(cmd: &mut Command, name: impl Into<String>, step: Duration) -> Plain {
        let name = name.into();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Plain {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            step,
        }
    }

    /// Move every line the child printed and nobody read yet into
    /// [`Plain::seen`], without waiting (for failure messages).
    pub fn take_pending(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// Write one line to the child's stdin.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let w = self.stdin.as_mut().expect("stdin open");
        writeln!(w, "{line}").expect("write stdin");
        w.flush().expect("flush stdin");
    }

    /// Wait (up to `step`) for a stdout line containing `needle`; returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + self.step;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "[{}] no line containing {needle:?} within {:?}; saw:\n{}",
                    self.name,
                    self.step,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// With `--json`: wait (up to `step` for each line) for an object whose
    /// `"event"` is `event` and for which `pred` holds; returns it.
    pub fn expect_event(
        &mut self,
        event: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let needle = format!("\"event\":\"{event}\"");
        let deadline = Instant::now() + self.step;
        while Instant::now() < deadline {
            let line = self.expect(&needle);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && pred(&v)
            {
                return v;
            }
        }
        panic!(
            "[{}] no matching {event} event within {:?}; saw:\n{}",
            self.name,
            self.step,
            self.seen.join("\n")
        );
    }

    /// A matching JSON event already seen, or else the next one.
    pub fn seen_or_expect_event(
        &mut self,
        event: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let already = self
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == event && pred(v));
        match already {
            Some(v) => v,
            None => self.expect_event(event, pred),
        }
    }

    /// Wait up to `d` for the child to exit.
    pub fn wait_exit(&mut self, d: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Close stdin and wait (up to `step`) for the exit code; the lines
    /// still in flight are collected into `seen`.
    pub fn finish(&mut self) -> i32 {
        self.stdin = None;
        let Some(st) = self.wait_exit(self.step) else {
            panic!("[{}] did not exit", self.name);
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        st.code().unwrap_or(-1)
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::welcome_nick;

    #[test]
    fn welcome_nick_in_both_shapes() {
        assert_eq!(
            welcome_nick("* welcome guest3: you are in lobby on s 0.1 (type /help for commands)"),
            Some("guest3")
        );
        assert_eq!(
            welcome_nick("* welcome to s 0.1: you are guest3 in lobby (x)"),
            Some("guest3")
        );
        assert_eq!(welcome_nick("* bob joined lobby"), None);
    }
}
