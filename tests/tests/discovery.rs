//! Finding the server on the LAN (issue 16 item 1), for real: mDNS/DNS-SD
//! between two hosts made of network namespaces on a bridge (a switch
//! namespace between them). The server in host A announces
//! `_sockchat._tcp.local.`; `sockchat --discover` in host B finds it with
//! the TXT values the server really has (name, version, users, rooms, TLS
//! port and certificate fingerprint, UDP port); a server with `[discovery]
//! announce = false` is not found; with nftables dropping 5353/udp in B
//! nothing is found and the firewall is named as the cause (and, the rule
//! gone, the same server is found). The TUI started in B with no server
//! shows the picker; Enter connects (TLS, the announced fingerprint pinned)
//! and a typed line reaches another client.
//!
//! Every packet stays in the namespaces the test makes (the mDNS daemons
//! run inside them and see only their interfaces); the loopback test runs
//! on the host and sends nothing (a server on loopback is not announced).
//! Needs root, `ip`, `nft` (and tmux for the picker): without them the tests
//! skip with the reason locally and fail under CI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sockchat_tests::netns::{Net, in_netns, netns_command};
use sockchat_tests::tmux::Tmux;
use sockchat_tests::{Plain, ServerProc, bin};

/// Generous: debug builds on a loaded machine.
const STEP: Duration = Duration::from_secs(60);

/// A fresh folder, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("sockchat-discovery-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server in host 0 of `net`, listening on its address (TLS on 7879
/// with a self-signed certificate made in `dir`), `config` as its file;
/// its log in `dir/server.log`.
struct Server {
    proc: Plain,
    log: PathBuf,
    fingerprint: String,
}

impl Server {
    fn start(net: &Net, dir: &TempDir, config: &str) -> Server {
        let cfg = dir.0.join("server.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.0.join("server.log");
        let listen = format!("{}:7878", net.addr(0));
        let data = dir.0.join("data");
        let mut cmd = netns_command(
            &net.hosts[0],
            &bin("sockchat-server"),
            &[
                "--listen",
                &listen,
                "--tls",
                "--data-dir",
                data.to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
            ],
        );
        cmd.stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        let mut proc = Plain::spawn(&mut cmd, "server", STEP);
        proc.expect(&format!("listening on {listen} (tcp)"));
        let line = proc.expect("tls certificate SHA256:");
        let fingerprint = line.split_whitespace().nth(2).unwrap().to_string();
        Server {
            proc,
            log,
            fingerprint,
        }
    }

    /// Wait (bounded) until the log has `needle`.
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the server's log never said {needle:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `sockchat --discover --timeout SECS ARGS` in host `i`: exit code and
/// stdout lines.
fn discover(net: &Net, i: usize, extra: &[&str]) -> (i32, Vec<String>) {
    let mut args = vec!["--discover", "--timeout", "3"];
    args.extend_from_slice(extra);
    let mut p = in_netns(&net.hosts[i], &bin("sockchat"), &args, "discover", STEP);
    let code = p.finish();
    (code, p.seen.clone())
}

/// The `server-found` objects of a `--discover --json` run.
fn found(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "server-found")
        .collect()
}

/// A `--plain` client in host `i` connected to the server.
fn plain(net: &Net, i: usize, nick: &str) -> Plain {
    let server = format!("{}:7878", net.addr(0));
    let mut p = in_netns(
        &net.hosts[i],
        &bin("sockchat"),
        &["--plain", "--server", &server, "--nick", nick],
        nick,
        STEP,
    );
    p.expect(&format!("welcome {nick}"));
    p
}

fn setup(tag: &str) -> Option<Net> {
    if !sockchat_tests::netns::preconditions(true) {
        return None;
    }
    let subnet = match tag {
        "found" => "169.254.81",
        "off" => "169.254.82",
        "firewall" => "169.254.83",
        "pinned" => "169.254.85",
        _ => "169.254.84",
    };
    Some(
        Net::bridged(&format!("disc-{tag}"), subnet, 2)
            .unwrap_or_else(|e| panic!("cannot build network namespaces: {e}")),
    )
}

#[test]
fn a_server_in_a_is_found_from_b_with_its_txt_values() {
    let Some(net) = setup("found") else { return };
    let dir = TempDir::new("found");
    let server = Server::start(
        &net,
        &dir,
        "[discovery]\nname = \"lab-a\"\nrefresh_secs = 1\n",
    );
    let log = server.wait_log("discovery: announced");
    assert!(
        log.contains("interfaces=e0"),
        "announced on e0 only:\n{log}"
    );
    // One user: the count announced must follow (re-announced within
    // refresh_secs of the change; a fresh browse gets the latest record).
    let _alice = plain(&net, 1, "alice");
    let mut last = Vec::new();
    let mut got = None;
    for _ in 0..5 {
        let (code, lines) = discover(&net, 1, &["--json"]);
        let f = found(&lines);
        assert_eq!(code, 0, "found, exit 0: {lines:?}");
        assert_eq!(f.len(), 1, "one server: {lines:?}");
        if f[0]["users"] == 1 {
            got = Some(f[0].clone());
            break;
        }
        last = lines;
    }
    let f = got.unwrap_or_else(|| panic!("users never became 1: {last:?}"));
    let a = net.addr(0);
    assert_eq!(f["name"], "lab-a", "{f}");
    assert_eq!(f["address"], format!("{a}:7878"), "{f}");
    assert_eq!(f["port"], 7878, "{f}");
    assert_eq!(f["rooms"], 1, "the default room: {f}");
    assert_eq!(f["version"], env!("CARGO_PKG_VERSION"), "{f}");
    assert_eq!(f["proto"], 1, "{f}");
    assert_eq!(f["tls"], true, "{f}");
    assert_eq!(f["tls_port"], 7879, "{f}");
    assert_eq!(f["fingerprint"], server.fingerprint.as_str(), "{f}");
    assert_eq!(f["udp_port"], 7878, "{f}");
    assert_eq!(f["problems"].as_array().map(Vec::len), Some(0), "{f}");

    // The same in words.
    let (code, lines) = discover(&net, 1, &[]);
    assert_eq!(code, 0);
    let line = lines
        .iter()
        .find(|l| l.starts_with("lab-a"))
        .unwrap_or_else(|| panic!("no line for lab-a: {lines:?}"));
    assert!(
        line.contains(&format!("{a}:7878  users 1  rooms 1")),
        "{line}"
    );
    assert!(
        line.contains(&format!("TLS :7879 {}", server.fingerprint)),
        "{line}"
    );
    assert!(
        lines.last().unwrap().starts_with("1 server(s) found"),
        "{lines:?}"
    );
    drop(server.proc);
}

#[test]
fn a_server_with_announce_off_is_not_found() {
    let Some(net) = setup("off") else { return };
    let dir = TempDir::new("off");
    let server = Server::start(&net, &dir, "[discovery]\nannounce = false\n");
    server.wait_log("discovery: not announced ([discovery] announce = false)");
    let _alice = plain(&net, 1, "alice");
    let (code, lines) = discover(&net, 1, &["--json"]);
    assert_eq!(code, 1, "nothing found, exit 1: {lines:?}");
    assert!(found(&lines).is_empty(), "{lines:?}");
    let done: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(done["event"], "discover-done");
    assert_eq!(done["found"], 0);
    let queried: Vec<&str> = done["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["queried"] == true)
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(queried, ["e1"], "{done}");
}

#[test]
fn a_firewall_dropping_5353_in_b_hides_the_server_and_is_named() {
    let Some(net) = setup("firewall") else { return };
    let dir = TempDir::new("firewall");
    let server = Server::start(&net, &dir, "[discovery]\nname = \"lab-fw\"\n");
    server.wait_log("discovery: announced");
    net.nft(
        1,
        "table inet sockchat_mdns {\n\
         chain in { type filter hook input priority 0; policy accept; udp dport 5353 counter drop; }\n\
         }\n",
    )
    .unwrap_or_else(|e| panic!("cannot load the nftables rule: {e}"));
    let (code, lines) = discover(&net, 1, &[]);
    assert_eq!(code, 1, "nothing found, exit 1: {lines:?}");
    assert!(
        lines[0]
            .starts_with("no sockchat server found: browsed _sockchat._tcp.local. for 3 s on e1"),
        "{lines:?}"
    );
    let cause = lines
        .iter()
        .find(|l| l.contains("cause: firewall:"))
        .unwrap_or_else(|| panic!("the firewall is not named as the cause: {lines:?}"));
    assert!(cause.contains("udp dport 5353"), "{cause}");
    assert!(
        cause.contains("table inet sockchat_mdns chain in"),
        "{cause}"
    );
    assert!(
        lines.iter().any(|l| l.contains("interfaces: queried e1 (")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("hint: loopback:")),
        "{lines:?}"
    );
    // The rule really dropped mDNS packets...
    let dropped = net.nft_packets(1, "inet", "sockchat_mdns").unwrap();
    assert!(dropped > 0, "the rule dropped nothing");
    // ...and it was the cause: without it the same server is found.
    net.nft(1, "delete table inet sockchat_mdns\n").unwrap();
    let (code, lines) = discover(&net, 1, &[]);
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("lab-fw")), "{lines:?}");
}

#[test]
fn a_server_on_loopback_says_it_is_not_announced() {
    // On the host's loopback: no mDNS daemon starts, nothing is sent.
    let server = ServerProc::start(&[]);
    assert!(
        server.wait_stderr("discovery: not announced: listening on loopback only", STEP),
        "{}",
        server.stderr()
    );
}

/// What both TUI tests set up: a server announcing `name` in host 0, bob's
/// TUI started without a server in host 1 (`args`; its own known-servers
/// file, holding `pinned` for the server's TLS address when given), and
/// the picker listing the server (`screen`). `None`: a precondition is
/// missing (`require`: a failure under CI). Fields drop in order: the
/// terminal first, the network last.
struct Picker {
    tmux: Tmux,
    server: Server,
    known: PathBuf,
    /// The server's address (host 0).
    addr: String,
    screen: String,
    _dir: TempDir,
    net: Net,
}

fn picker(tag: &str, name: &str, pinned: Option<&str>, args: &str) -> Option<Picker> {
    if !sockchat_tests::tmux::require_tmux() {
        return None;
    }
    let net = setup(tag)?;
    let dir = TempDir::new(tag);
    let server = Server::start(&net, &dir, &format!("[discovery]\nname = \"{name}\"\n"));
    server.wait_log("discovery: announced");
    let known = dir.0.join("known_servers");
    let addr = net.addr(0);
    if let Some(fingerprint) = pinned {
        std::fs::write(&known, format!("{addr}:7879 {fingerprint}\n")).unwrap();
    }
    let tmux = Tmux::new(tag);
    tmux.client_wrapped(
        "bob",
        160,
        30,
        &format!("ip netns exec {}", net.hosts[1]),
        &format!("SOCKCHAT_KNOWN_SERVERS={}", known.display()),
        args,
    );
    let screen = tmux.wait_for_within("bob", &format!("> {name}  {addr}:7878"), STEP);
    Some(Picker {
        tmux,
        server,
        known,
        addr,
        screen,
        _dir: dir,
        net,
    })
}

#[test]
fn the_tui_without_a_server_picks_one_from_the_lan_and_chats() {
    let Some(p) = picker("picker", "lab-tui", None, "--nick bob") else {
        return;
    };
    let mut alice = plain(&p.net, 1, "alice");
    let (tmux, s, a) = (&p.tmux, &p.screen, &p.addr);
    assert!(s.contains("Enter connect"), "{s}");
    assert!(
        s.contains(&format!("TLS :7879 {}", p.server.fingerprint)),
        "{s}"
    );
    tmux.keys("bob", &["Enter"]);
    let s = tmux.wait_for_within("bob", "welcome bob", STEP);
    assert!(s.contains(&format!("{a}:7879")), "TLS port: {s}");
    alice.expect("bob joined lobby");
    // Pinned as a first use would: the next connection checks it.
    let pins = std::fs::read_to_string(&p.known).unwrap_or_default();
    assert!(pins.contains(&p.server.fingerprint), "pinned: {pins:?}");
    tmux.line("bob", "hello from the picker");
    alice.expect("bob: hello from the picker");
}

#[test]
fn discover_flags_are_checked_before_anything_is_sent() {
    // Usage errors (exit 2), on the host: nothing is browsed.
    for (args, says) in [
        (
            &["--discover", "--server", "10.0.0.1"][..],
            "leave out --server",
        ),
        (&["--discover", "--timeout", "0"][..], "out of range"),
        (&["--discover", "--timeout", "601"][..], "out of range"),
        (
            &["--plain", "--timeout", "3"][..],
            "only applies to --discover",
        ),
    ] {
        let out = sockchat_tests::sockchat_command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn an_announced_fingerprint_never_replaces_a_pin() {
    // Anyone on the link can announce: a certificate pinned earlier for
    // the address still decides, and the picker's connection is refused
    // with the usual warning when the server shows another one.
    let old = "SHA256:".to_string() + &["00"; 32].join(":");
    let Some(p) = picker("pinned", "lab-pin", Some(&old), "--nick bob --no-reconnect") else {
        return;
    };
    p.tmux.keys("bob", &["Enter"]);
    let s = p.tmux.wait_for_within("bob", "HAS CHANGED", STEP);
    assert!(!s.contains("welcome bob"), "{s}");
    let pins = std::fs::read_to_string(&p.known).unwrap();
    let a = &p.addr;
    assert_eq!(pins, format!("{a}:7879 {old}\n"), "the pin is untouched");
    assert!(!pins.contains(&p.server.fingerprint));
}
