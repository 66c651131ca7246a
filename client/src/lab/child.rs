//! The lab's child processes: `ChildProc` spawns this binary again as
//! `sockchat lab --child MODE` (hidden) and kills and reaps it, and
//! `child_main` is what such a child runs (a raw TCP sender, a text-mode
//! sender against a live server, a throwaway server). The kill -9 and
//! server-restart scenarios need a real process of their own to end.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sockchat_shared::sockopt;

use super::cleanup::{self, Resource};
use super::probe::{accept_within, wait_recv_queue};
use super::textconn::TextConn;

/// A child never outlives this, even if the parent vanished without killing
/// it (the parent normally kills it within a second).
const CHILD_MAX_LIFE: Duration = Duration::from_secs(30);

/// Messages per second a text-mode sender child sends: well under the
/// server's default rate limit (20/s), so rate limiting never interferes.
const SEND_EVERY: Duration = Duration::from_millis(100);

/// A spawned lab child. Dropping it kills (SIGKILL) and reaps it, so a
/// failing scenario never leaves a process behind.
pub struct ChildProc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProc {
    /// Re-execute this binary as `sockchat lab --child MODE --child-addr ADDR`.
    /// `chat`: (nick, room) for the text-mode children.
    pub fn spawn(mode: &str, addr: &str, chat: Option<(&str, &str)>) -> anyhow::Result<Self> {
        // /proc/self/exe still works if the binary was replaced on disk
        // (a rebuild while the lab runs); current_exe() is the fallback.
        let exe = match std::path::Path::new("/proc/self/exe") {
            p if p.exists() => p.to_path_buf(),
            _ => std::env::current_exe().context("locate the sockchat binary")?,
        };
        let mut cmd = cleanup::child_command(&exe);
        cmd.args(["lab", "--child", mode, "--child-addr", addr]);
        if let Some((nick, room)) = chat {
            cmd.args(["--child-nick", nick, "--child-room", room]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cleanup::create_then_register(|| match cmd.spawn() {
            Ok(c) => {
                let pid = c.id();
                (Ok(c), Some(Resource::Pid(pid)))
            }
            Err(e) => (Err(e), None),
        })
        .with_context(|| format!("spawn {} lab --child {mode}", exe.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildProc { child, lines })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the child printed (its readiness reports).
    pub fn line(&self, limit: Duration) -> anyhow::Result<String> {
        self.lines
            .recv_timeout(limit)
            .with_context(|| format!("child {} said nothing within {limit:?}", self.pid()))
    }

    /// Send `sig` and reap the process.
    pub fn signal_and_wait(&mut self, sig: i32) -> anyhow::Result<std::process::ExitStatus> {
        // SAFETY: plain kill(2) on our own child, which is not reaped yet,
        // so the pid cannot have been reused.
        if unsafe { libc::kill(self.child.id() as libc::pid_t, sig) } != 0 {
            return Err(io::Error::last_os_error()).context("kill");
        }
        let status = self.child.wait()?;
        // Reaped: the pid may be reused from now on, so forget it.
        cleanup::unregister(&Resource::Pid(self.child.id()));
        Ok(status)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        cleanup::unregister(&Resource::Pid(self.child.id()));
    }
}

/// Entry point of `sockchat lab --child MODE` (hidden).
///
/// Modes: `sender` (connect, then write without end), `sender-unread` (same,
/// but first wait until the parent's bytes sit unread in our receive queue),
/// `server` (listen on ADDR, print the port, greet and hold each
/// connection), and `text-sender`/`text-sender-unread` (the same against a
/// live sockchat-server in text mode).
pub fn child_main(
    mode: &str,
    addr: Option<&str>,
    nick: Option<&str>,
    room: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let addr = addr.context("--child needs --child-addr")?;
    let deadline = Instant::now() + CHILD_MAX_LIFE;
    let mut out = io::stdout();
    match mode {
        "sender" | "sender-unread" => {
            let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
            if mode == "sender-unread" {
                wait_unread(&s, deadline)?;
            }
            writeln!(out, "ready")?;
            out.flush()?;
            // Short timeout so the deadline is checked even while blocked.
            s.set_write_timeout(Some(Duration::from_millis(500)))?;
            let chunk = vec![b'x'; 64 * 1024];
            while Instant::now() < deadline {
                match s.write(&chunk) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e).context("child write"),
                }
            }
        }
        "text-sender" | "text-sender-unread" => {
            let chat = nick
                .zip(room)
                .context("text-sender needs --child-nick and --child-room")?;
            child_text_sender(addr, chat, mode == "text-sender-unread", deadline)?;
        }
        "server" => {
            let l = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
            writeln!(out, "listening {}", l.local_addr()?.port())?;
            out.flush()?;
            let mut held = Vec::new();
            while Instant::now() < deadline {
                if let Ok((mut s, _)) = accept_within(&l, Duration::from_millis(200)) {
                    let _ = writeln!(s, "hello from server pid {}", std::process::id());
                    held.push(s);
                }
            }
        }
        other => anyhow::bail!("unknown lab child mode {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Child side of "unread data": wait until the parent's bytes are in our
/// receive queue, and never read them.
fn wait_unread(s: &TcpStream, deadline: Instant) -> anyhow::Result<()> {
    while sockopt::recv_queue(s.as_raw_fd())? == 0 {
        if Instant::now() >= deadline {
            anyhow::bail!("no data arrived to leave unread");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Child side (`--child text-sender[-unread]`): join, then chat until killed.
pub fn child_text_sender(
    server: &str,
    (nick, room): (&str, &str),
    unread: bool,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut a = TextConn::connect(server)?;
    a.send(&format!("/nick {nick}"))?;
    a.send(&format!("/join {room}"))?;
    a.wait_for(Duration::from_secs(3), |l| l.contains(room))
        .context("never joined the lab room")?;
    a.drain(Duration::from_millis(300));
    if unread {
        a.send("/help")?;
        wait_recv_queue(a.stream.as_raw_fd(), 1, Duration::from_secs(3))?;
    }
    let mut out = io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut n = 0u64;
    let mut sink = [0u8; 4096];
    while Instant::now() < deadline {
        n += 1;
        a.send(&format!("message {n}"))?;
        if !unread {
            // Keep the receive queue empty: read whatever arrived.
            a.stream.set_nonblocking(true)?;
            while let Ok(k) = a.stream.read(&mut sink) {
                if k == 0 {
                    break;
                }
            }
            a.stream.set_nonblocking(false)?;
        }
        std::thread::sleep(SEND_EVERY);
    }
    Ok(())
}
