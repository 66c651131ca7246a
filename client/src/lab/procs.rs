//! Scenarios where a real process dies: `kill -9` in the middle of sending,
//! and a server process that stops and comes back. The lab re-executes its
//! own binary (`sockchat lab --child MODE`, hidden) to get a process it can
//! SIGKILL; what the kernel does at process exit is the whole point, so an
//! in-process close() would not be the same experiment.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sockchat_shared::sockopt;

use super::cleanup::{self, Resource};
use super::outcome::{Outcome, code_of};
use super::tcp::{READ_LIMIT, accept_within, read_until_end};
use super::{Ctx, remote};

/// A child never outlives this, even if the parent vanished without killing
/// it (the parent normally kills it within a second).
const CHILD_MAX_LIFE: Duration = Duration::from_secs(30);

/// How much the parent reads from a sending child before killing it: proof
/// that the child is really in the middle of sending.
const READ_BEFORE_KILL: u64 = 256 * 1024;

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
/// live sockchat-server in text mode, see `remote`).
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
            remote::child_text_sender(addr, chat, mode == "text-sender-unread", deadline)?;
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

pub fn kill9_sending(ctx: &Ctx) -> Outcome {
    if let Some(server) = &ctx.server {
        return remote::kill9_scenario(server, false);
    }
    kill9("kill9-sending", false)
}

pub fn kill9_unread(ctx: &Ctx) -> Outcome {
    if let Some(server) = &ctx.server {
        return remote::kill9_scenario(server, true);
    }
    kill9("kill9-unread", true)
}

fn kill9(name: &'static str, unread: bool) -> Outcome {
    let expected = if unread { "reset" } else { "eof" };
    let run = || -> anyhow::Result<Outcome> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let mode = if unread { "sender-unread" } else { "sender" };
        let mut child = ChildProc::spawn(mode, &addr.to_string(), None)?;
        let (mut peer, _) = accept_within(&l, Duration::from_secs(5))?;
        if unread {
            peer.write_all(b"you will never read this\n")?;
        }
        let ready = child.line(Duration::from_secs(5))?;
        anyhow::ensure!(ready == "ready", "child said {ready:?}");
        // Read a good amount so the child is provably mid-send when killed.
        peer.set_read_timeout(Some(READ_LIMIT))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut before = 0u64;
        while before < READ_BEFORE_KILL {
            let n = io::Read::read(&mut peer, &mut buf).context("read from child")?;
            anyhow::ensure!(n > 0, "child stopped sending before the kill");
            before += n as u64;
        }
        let pid = child.pid();
        let status = child.signal_and_wait(libc::SIGKILL)?;
        let r = read_until_end(&mut peer, READ_LIMIT);
        let (obs, errno) = r.observed();
        let action = format!(
            "kill -9 while sending{}",
            if unread {
                ", with unread data"
            } else {
                ", nothing unread"
            }
        );
        let why = if unread {
            "at exit the kernel closes the socket like close(): unread data in its receive queue turns that into RST, so the peer gets ECONNRESET"
        } else {
            "at exit the kernel closes the socket like close(): nothing unread, so it still delivers the queued data and then FIN; the peer just reads EOF"
        };
        Ok(Outcome::judge(
            name,
            action,
            obs,
            errno,
            expected,
            if unread { Some(libc::ECONNRESET) } else { None },
            true,
            why,
        )
        .with_details(vec![
            format!(
                "child pid {pid} ended by {status}; peer had read {before} bytes before the kill"
            ),
            format!(
                "after the kill the peer read {} more bytes, then {} ({:?})",
                r.bytes,
                match &r.end {
                    Ok(()) => "EOF".to_string(),
                    Err(e) => e.to_string(),
                },
                r.elapsed
            ),
        ]))
    };
    run().unwrap_or_else(|e| Outcome::setup_failed(name, expected, &e))
}

pub fn server_restart(_ctx: &Ctx) -> Outcome {
    const NAME: &str = "server-restart";
    let run = || -> anyhow::Result<Outcome> {
        let mut details = Vec::new();
        let mut server = ChildProc::spawn("server", "127.0.0.1:0", None)?;
        let port: u16 = server
            .line(Duration::from_secs(5))?
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .context("server child did not report its port")?;
        let addr = format!("127.0.0.1:{port}");
        let mut c = TcpStream::connect(&addr)?;
        c.set_read_timeout(Some(READ_LIMIT))?;
        let mut greet = String::new();
        BufReader::new(&c).read_line(&mut greet)?;
        details.push(format!("connected; server said {:?}", greet.trim_end()));

        // Step 1: the server process stops. Nothing unread on its side, so
        // the kernel closes its sockets with FIN.
        let status = server.signal_and_wait(libc::SIGTERM)?;
        let r = read_until_end(&mut c, READ_LIMIT);
        let (step1, _) = r.observed();
        details.push(format!("server stopped ({status}); client read: {step1}"));
        drop(c);

        // Step 2: while it is down, connect is refused.
        let down = TcpStream::connect(&addr);
        let (step2, errno2) = match &down {
            Ok(_) => ("connected".to_string(), None),
            Err(e) => code_of(e),
        };
        details.push(format!(
            "connect while down: {}",
            match &down {
                Ok(_) => "connected (?)".to_string(),
                Err(e) => e.to_string(),
            }
        ));

        // Step 3: the server comes back on the same port; reconnect works.
        let t = Instant::now();
        let server2 = ChildProc::spawn("server", &addr, None)?;
        let ready = server2.line(Duration::from_secs(5))?;
        anyhow::ensure!(
            ready.starts_with("listening"),
            "restarted server said {ready:?}"
        );
        let step3 = match TcpStream::connect(&addr) {
            Ok(c2) => {
                c2.set_read_timeout(Some(READ_LIMIT))?;
                let mut g = String::new();
                BufReader::new(&c2).read_line(&mut g)?;
                details.push(format!(
                    "reconnected {:?} after restart; server said {:?}",
                    t.elapsed(),
                    g.trim_end()
                ));
                "connected".to_string()
            }
            Err(e) => code_of(&e).0,
        };
        drop(server2);
        let observed = format!("{step1} -> {step2} -> {step3}");
        Ok(Outcome::judge(
            NAME,
            "server process stopped, then started again",
            observed,
            errno2,
            "eof -> refused -> connected",
            Some(libc::ECONNREFUSED),
            true,
            "a stopping server's kernel closes its sockets with FIN (EOF for clients); while nothing listens SYNs get RST (ECONNREFUSED); a client that retries reconnects",
        )
        .with_details(details))
    };
    run().unwrap_or_else(|e| Outcome::setup_failed(NAME, "eof -> refused -> connected", &e))
}
