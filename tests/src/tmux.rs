//! A private tmux server for end-to-end tests of the terminal UI: start
//! `sockchat` in detached sessions of a chosen size, type into them
//! (send-keys, paste) and read their screens (capture-pane). Killed, with
//! its socket file, on drop.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Plain, bin, sockchat_command};

/// Bound for one expected screen change.
pub const STEP: Duration = Duration::from_secs(15);

/// A private tmux server for this test.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub fn new(tag: &str) -> Tmux {
        Tmux {
            socket: format!("sockchat-test-{}-{tag}", std::process::id()),
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start `sockchat` in a new detached session of the given size. The
    /// pane's shell runs it in the foreground, then prints its exit status
    /// and stays (tmux's own dead-pane status is not reliable: it sometimes
    /// leaves the exited process unreaped).
    pub fn client(&self, session: &str, w: u16, h: u16, args: &str) {
        self.client_env(session, w, h, "", args);
    }

    /// [`Tmux::client`] with extra `NAME=value` environment settings.
    pub fn client_env(&self, session: &str, w: u16, h: u16, env: &str, args: &str) {
        self.client_wrapped(session, w, h, "", env, args);
    }

    /// [`Tmux::client_env`] run through `wrapper` (e.g. `ip netns exec NS`).
    pub fn client_wrapped(
        &self,
        session: &str,
        w: u16,
        h: u16,
        wrapper: &str,
        env: &str,
        args: &str,
    ) {
        let cmd = format!(
            "{wrapper} env HOME=/nonexistent TERM=xterm-256color {env} {} {args}; echo \"sockchat exited: $?\"; sleep 600",
            bin("sockchat").display()
        );
        self.run(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            &cmd,
        ]);
    }

    /// The pid of the sockchat process: the child of the pane's shell.
    pub fn client_pid(&self, session: &str) -> i32 {
        let sh = self.pane(session, "#{pane_pid}");
        let deadline = Instant::now() + STEP;
        loop {
            let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
                .unwrap_or_default();
            if let Some(pid) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "{session}: no sockchat process");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the shell's `sockchat exited: N` line; returns N (128 + the
    /// signal number when a signal ended it).
    pub fn exit_status(&self, session: &str) -> String {
        let line = self.wait_for(session, "sockchat exited: ");
        let i = line.find("sockchat exited: ").unwrap_or(0) + "sockchat exited: ".len();
        line[i..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect()
    }

    pub fn capture(&self, session: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", session])
    }

    pub fn keys(&self, session: &str, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", session];
        a.extend_from_slice(keys);
        self.run(&a);
    }

    /// Paste `text` into the pane as a terminal paste: bracketed (the
    /// application asked for it) when `bracketed`, else as plain typed
    /// bytes.
    pub fn paste(&self, session: &str, text: &str, bracketed: bool) {
        self.run(&["set-buffer", "-b", "sockchat-test", text]);
        let mut a = vec!["paste-buffer", "-d", "-b", "sockchat-test", "-t", session];
        if bracketed {
            a.push("-p");
        }
        self.run(&a);
    }

    /// Type a line literally, then Enter.
    pub fn line(&self, session: &str, text: &str) {
        self.run(&["send-keys", "-t", session, "-l", text]);
        self.keys(session, &["Enter"]);
    }

    pub fn pane(&self, session: &str, fmt: &str) -> String {
        self.run(&["display-message", "-p", "-t", session, fmt])
            .trim()
            .to_string()
    }

    /// Wait until the screen contains `needle`; returns the screen.
    pub fn wait_for(&self, session: &str, needle: &str) -> String {
        self.wait_for_within(session, needle, STEP)
    }

    /// `wait_for` with its own bound, for a step whose work scales with
    /// the machine (hashing a 2 GiB file on a loaded 2-core box).
    pub fn wait_for_within(&self, session: &str, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let s = self.capture(session);
            if s.contains(needle) {
                return s;
            }
            if Instant::now() >= deadline {
                panic!("[{session}] screen never showed {needle:?}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Our private tmux server only (and the clients it still runs), and
        // its socket file, which tmux may leave behind.
        let path = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display-message",
                "-p",
                "#{socket_path}",
            ])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty());
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        if let Some(p) = path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A free port below the kernel's ephemeral range (32768+): after the
/// server is killed, no outgoing connection elsewhere on the machine can
/// take it as its source port before the restarted server binds it again.
pub fn restartable_port() -> u16 {
    let base = 20_000 + (std::process::id() % 10_000) as u16;
    for p in (base..32_000).chain(20_000..base) {
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port in 20000..32000");
}

/// A `--plain` client called `nick` on `addr`, welcomed: the other person
/// in a room with a TUI under test.
pub fn plain_client(addr: &str, nick: &str) -> Plain {
    let mut p = Plain::spawn(
        &mut sockchat_command(&["--server", addr, "--nick", nick, "--plain"]),
        nick,
        STEP,
    );
    p.expect(&format!("welcome {nick}"));
    p
}

/// tmux is installed; otherwise the test skips with the reason (fails
/// under CI, `crate::require`).
pub fn require_tmux() -> bool {
    crate::require(
        Tmux::available(),
        "tmux is not installed (./test.sh installs it)",
    )
}
