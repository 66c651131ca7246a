//! TLS end to end, with real processes: the real `openssl s_client` and
//! `ncat --ssl` chat in text mode over the server's TLS port with a framed
//! client on the plain port; the certificate is self-signed on first run
//! and its fingerprint printed (and the same as openssl's); `tls_only`
//! leaves no plaintext way in; the sockchat client pins the certificate on
//! first use, refuses a changed one with a warning and the command that
//! accepts it, takes `--tls-fingerprint` up front, and warns that `--udp` is
//! not encrypted. openssl and ncat are required under CI (test.sh installs
//! them).

#![allow(
    clippy::expect_used,
    reason = "test helpers: a panic is a failed test with its message"
)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::{FramedClient, Plain, ServerProc, require, sockchat_command};

/// Bound for each expected line (other processes load the CPU).
const STEP: Duration = Duration::from_secs(20);

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh directory for one test (the server's data dir, the client's
/// known_servers).
fn temp_dir(tag: &str) -> PathBuf {
    sockchat_tests::scratch_dir(&format!("tls-{tag}"))
}

fn tls_server(data: &std::path::Path, extra: &[&str]) -> ServerProc {
    let mut args = vec![
        "--tls-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    ServerProc::start(&args)
}

/// A config file: `limits` (TOML lines of `[limits]`, may be empty), then
/// `[tls]` on 127.0.0.1:0 with its data dir and the extra `tls` lines.
fn tls_config(tag: &str, limits: &str, tls: &str, data: &std::path::Path) -> PathBuf {
    sockchat_tests::config_file(
        tag,
        &format!(
            "[limits]\n{limits}[tls]\nlisten = [\"127.0.0.1:0\"]\ndata_dir = {:?}\n{tls}",
            data.to_str().expect("utf-8")
        ),
    )
}

/// A server started with `--config` and nothing else but `--listen`.
fn server_with(cfg: &std::path::Path) -> ServerProc {
    ServerProc::start(&["--config", cfg.to_str().expect("utf-8")])
}

/// A text-mode user through a real TLS tool (stdin/stdout piped).
fn tool(name: &str, args: &[&str]) -> Plain {
    let mut cmd = Command::new(name);
    cmd.args(args).stderr(Stdio::null());
    Plain::spawn(&mut cmd, name, STEP)
}

fn chat_from<'a>(from: &'a str, text: &'a str) -> impl Fn(&ServerMsg) -> bool + 'a {
    move |m| matches!(m, ServerMsg::Chat { from: f, text: t, .. } if f == from && t == text)
}

/// A text user on `tool` and a framed user on plain TCP see each other's
/// messages.
async fn chat_both_ways(server: &ServerProc, mut t: Plain, nick: &str) {
    t.expect("welcome");
    t.send(&format!("/nick {nick}"));
    t.expect(&format!("is now known as {nick}"));
    let mut framed = FramedClient::connect(server.addr, "plainbob").await;
    t.expect("plainbob joined lobby");
    t.send("hello over tls");
    framed.recv_until(chat_from(nick, "hello over tls")).await;
    framed
        .send(&ClientMsg::Say {
            room: "lobby".into(),
            text: "hello in the clear".into(),
        })
        .await;
    t.expect("plainbob: hello in the clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_chats_in_text_mode_over_tls() {
    require!(
        has("openssl"),
        "openssl is not installed (test.sh installs it)"
    );
    let data = temp_dir("s_client");
    let server = tls_server(&data, &[]);
    let fp = server.tls_fingerprint.clone().expect("fingerprint printed");
    // The fingerprint printed is the certificate's, as openssl computes it.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(data.join("cert.pem"))
        .output()
        .expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim().ends_with(fp.trim_start_matches("SHA256:")),
        "server printed {fp}, openssl says {text}"
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("key.pem"))
            .expect("key.pem")
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "the private key is private");
    let addr = server.tls_addr().to_string();
    let t = tool("openssl", &["s_client", "-quiet", "-connect", &addr]);
    chat_both_ways(&server, t, "sslsam").await;

    // A restart keeps the same certificate (clients have pinned it).
    drop(server);
    let again = tls_server(&data, &[]);
    assert_eq!(again.tls_fingerprint, Some(fp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ncat_ssl_chats_in_text_mode_over_tls() {
    require!(has("ncat"), "ncat is not installed (test.sh installs it)");
    let data = temp_dir("ncat");
    let server = tls_server(&data, &[]);
    let a = server.tls_addr();
    let t = tool(
        "ncat",
        &["--ssl", &a.ip().to_string(), &a.port().to_string()],
    );
    chat_both_ways(&server, t, "ncatnat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_leaves_no_plaintext_way_in() {
    require!(
        has("openssl"),
        "openssl is not installed (test.sh installs it)"
    );
    let data = temp_dir("only");
    // A port we know is free now: tls_only must leave it closed.
    let plain_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{plain_port}");
    let cfg = tls_config("tls-only", "", "tls_only = true\n", &data);
    let server = ServerProc::start_args(
        &["--listen", &listen],
        &["--config", cfg.to_str().expect("utf-8")],
    );
    assert!(
        server.listen_lines.iter().all(|l| l.ends_with(" (tls)")),
        "only TLS listens: {:?}",
        server.listen_lines
    );
    let e = std::net::TcpStream::connect(&listen).expect_err("plain TCP must be off");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.connect(&listen).expect("connect udp");
    let _ = udp.send(b"\x00SCK");
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    assert!(udp.recv(&mut [0u8; 64]).is_err(), "no UDP answer either");

    // Plaintext on the TLS port gets no chat: the handshake fails.
    let mut text = sockchat_tests::TextClient::connect(server.tls_addr()).await;
    text.line("hello in the clear").await;
    match text.read_line_timeout(STEP).await {
        Ok(None) | Err(_) => {}
        Ok(Some(l)) => assert!(!l.contains("welcome"), "plaintext got in: {l}"),
    }
    // While TLS works.
    let addr = server.tls_addr().to_string();
    let mut t = tool("openssl", &["s_client", "-quiet", "-connect", &addr]);
    t.expect("welcome");
}

#[test]
fn sockinfo_over_tls_shows_the_real_socket_and_the_cipher() {
    require!(
        has("openssl"),
        "openssl is not installed (test.sh installs it)"
    );
    let data = temp_dir("sockinfo");
    let server = tls_server(&data, &[]);
    let addr = server.tls_addr().to_string();
    let mut t = tool("openssl", &["s_client", "-quiet", "-connect", &addr]);
    t.expect("welcome");
    t.send("/sockinfo");
    let l = t.expect("tls_version=");
    assert!(l.contains("tls_version=TLSv1.3"), "{l}");
    assert!(l.contains("tls_cipher=TLS13_"), "{l}");
    // TCP_INFO of the user's TCP socket, not of the internal relay.
    assert!(l.contains("tcpi_state=ESTABLISHED"), "{l}");
    assert!(l.contains("rtt_us="), "{l}");
}

/// `sockchat --plain` over TLS to `server`, with its own known_servers.
fn tls_client(server: &str, known: &std::path::Path, extra: &[&str]) -> Plain {
    let mut args = vec![
        "--plain",
        "--no-reconnect",
        "--server",
        server,
        "--known-servers",
        known.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let mut cmd = sockchat_command(&args);
    cmd.stderr(Stdio::null());
    Plain::spawn(&mut cmd, format!("sockchat {}", extra.join(" ")), STEP)
}

#[test]
fn the_client_pins_on_first_use_and_refuses_a_changed_certificate() {
    let dir = temp_dir("tofu");
    let known = dir.join("config/known_servers");
    let first = tls_server(&dir.join("a"), &[]);
    let fp_a = first.tls_fingerprint.clone().expect("fingerprint");
    let addr = first.tls_addr().to_string();

    // First contact: connected, told, pinned.
    let mut c = tls_client(&addr, &known, &["--tls", "--nick", "tina"]);
    let l = c.expect("first contact");
    assert!(l.contains(&fp_a), "shows the fingerprint: {l}");
    assert!(l.contains("TLSv1.3"), "{l}");
    c.send("pinned hello");
    c.expect("tina: pinned hello");
    c.send("/quit");
    assert_eq!(c.finish(), 0, "{:?}", c.seen);
    let pins = std::fs::read_to_string(&known).expect("known_servers written");
    assert_eq!(pins.trim(), format!("{addr} {fp_a}"));

    // Again: the pin matches.
    let mut c = tls_client(&addr, &known, &["--tls", "--nick", "tina"]);
    c.expect("matches the pin");
    c.send("/quit");
    assert_eq!(c.finish(), 0, "{:?}", c.seen);

    // The same address, a new certificate: refused with the warning and
    // the command to accept it; nothing is sent.
    drop(first);
    let second = tls_server(&dir.join("b"), &["--tls-listen", &addr]);
    let fp_b = second.tls_fingerprint.clone().expect("fingerprint");
    assert_ne!(fp_a, fp_b);
    let mut c = tls_client(&addr, &known, &["--tls", "--nick", "tina"]);
    c.send("must not arrive");
    let warning = c.expect("HAS CHANGED");
    assert!(
        warning.contains(&fp_a) && warning.contains(&fp_b),
        "{warning}"
    );
    let cmd = warning
        .split("accept it with: ")
        .nth(1)
        .expect("the command to accept")
        .trim()
        .to_string();
    assert_eq!(
        cmd,
        format!("sockchat --server {addr} --tls --tls-fingerprint {fp_b}")
    );
    // It stops for good, with its input still open: the reconnect loop
    // does not try the same certificate again at every back-off.
    let stopped = c.wait_exit(Duration::from_secs(4));
    assert_eq!(c.finish(), 1, "{:?}", c.seen);
    assert!(stopped.is_some(), "still reconnecting: {:?}", c.seen);
    assert_eq!(
        c.seen
            .iter()
            .filter(|l| l.contains("Refusing to connect"))
            .count(),
        1,
        "warned once: {:?}",
        c.seen
    );
    assert!(
        !c.seen.iter().any(|l| l.contains("welcome")),
        "no session with a changed certificate: {:?}",
        c.seen
    );
    assert_eq!(
        std::fs::read_to_string(&known).expect("pins").trim(),
        format!("{addr} {fp_a}"),
        "a refused certificate is not pinned"
    );

    // The command from the warning accepts it (and re-pins).
    let args: Vec<&str> = cmd
        .split(' ')
        .skip(1)
        .filter(|a| !a.starts_with("--server") && *a != addr)
        .collect();
    let mut c = tls_client(&addr, &known, &args);
    c.expect("is the one --tls-fingerprint gave");
    c.send("/quit");
    assert_eq!(c.finish(), 0, "{:?}", c.seen);
    assert_eq!(
        std::fs::read_to_string(&known).expect("pins").trim(),
        format!("{addr} {fp_b}")
    );
    let mut c = tls_client(&addr, &known, &["--tls"]);
    c.expect("matches the pin");
}

#[test]
fn tls_fingerprint_pins_up_front() {
    let dir = temp_dir("upfront");
    let known = dir.join("known_servers");
    let server = tls_server(&dir.join("data"), &[]);
    let fp = server.tls_fingerprint.clone().expect("fingerprint");
    let addr = server.tls_addr().to_string();
    // A wrong fingerprint: refused before any session, even on first contact.
    let wrong =
        sockchat_shared::fingerprint::Fingerprint::of_der(b"another certificate").to_string();
    let mut c = tls_client(&addr, &known, &["--tls-fingerprint", &wrong]);
    let l = c.expect("HAS CHANGED");
    assert!(l.contains("--tls-fingerprint"), "{l}");
    assert_eq!(c.finish(), 1, "{:?}", c.seen);
    assert!(!known.exists(), "nothing pinned");
    // The right one (openssl's form: no prefix, lower case, no colons).
    let bare = fp
        .trim_start_matches("SHA256:")
        .replace(':', "")
        .to_lowercase();
    let mut c = tls_client(&addr, &known, &["--tls-fingerprint", &bare]);
    c.expect("is the one --tls-fingerprint gave");
    c.send("/quit");
    assert_eq!(c.finish(), 0, "{:?}", c.seen);
    assert_eq!(
        std::fs::read_to_string(&known).expect("pinned").trim(),
        format!("{addr} {fp}")
    );
}

#[test]
fn udp_with_tls_says_udp_is_not_encrypted() {
    let dir = temp_dir("udp");
    let server = tls_server(&dir.join("data"), &[]);
    let udp = server.udp_addr().to_string();
    let mut c = tls_client(&udp, &dir.join("known"), &["--udp", "--tls"]);
    c.expect("UDP is not encrypted");
    c.expect("welcome");
    c.send("/quit");
    assert_eq!(c.finish(), 0, "{:?}", c.seen);
    // Without TLS asked for, no such warning.
    let mut c = tls_client(&udp, &dir.join("known"), &["--udp"]);
    c.expect("welcome");
    c.send("/quit");
    c.finish();
    assert!(
        !c.seen.iter().any(|l| l.contains("not encrypted")),
        "{:?}",
        c.seen
    );
}

#[test]
fn a_configured_certificate_is_served_and_its_fingerprint_printed() {
    require!(
        has("openssl"),
        "openssl is not installed (test.sh installs it)"
    );
    let dir = temp_dir("ownca");
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-subj",
            "/CN=sockchat-test",
            "-days",
            "2",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl req");
    assert!(made.success());
    let own = format!(
        "cert = {:?}\nkey = {:?}\n",
        cert.to_str().expect("utf-8"),
        key.to_str().expect("utf-8")
    );
    let server = server_with(&tls_config("own-cert", "", &own, &dir.join("unused")));
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    let fp = server.tls_fingerprint.clone().expect("fingerprint printed");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .ends_with(fp.trim_start_matches("SHA256:")),
        "{fp}"
    );
    assert!(!dir.join("unused").exists(), "no self-signed pair made");
    let known = dir.join("known");
    let mut c = tls_client(
        &server.tls_addr().to_string(),
        &known,
        &["--tls-fingerprint", &fp],
    );
    c.expect("is the one --tls-fingerprint gave");
}

#[test]
fn a_silent_connection_on_the_tls_port_is_closed_after_the_handshake_timeout() {
    let dir = temp_dir("slow");
    let cfg = tls_config("tls-slow", "handshake_timeout_secs = 1\n", "", &dir);
    let server = server_with(&cfg);
    let mut s = std::net::TcpStream::connect(server.tls_addr()).expect("connect");
    // Half a ClientHello, then nothing (slowloris on the handshake).
    std::io::Write::write_all(&mut s, &[0x16, 0x03, 0x01, 0x00, 0x80, 0x01]).expect("write");
    s.set_read_timeout(Some(STEP)).expect("timeout");
    let t = std::time::Instant::now();
    let r = std::io::Read::read(&mut s, &mut [0u8; 64]);
    assert!(
        matches!(r, Ok(0))
            || r.as_ref()
                .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock),
        "closed by the server: {r:?}"
    );
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(10), "closed after {waited:?}");
    assert!(
        server.wait_stderr("tls handshake: not done within 1 s", STEP),
        "logged: {}",
        server.stderr()
    );
}

/// A TLS user's abrupt end keeps its one real reason: a reset of the TCP
/// connection under TLS is announced as `reset`, not as the EOF the relay
/// hands the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_under_tls_is_announced_as_reset() {
    let dir = temp_dir("rst");
    let server = tls_server(&dir.join("data"), &[]);
    let mut watcher = FramedClient::connect(server.addr, "watcher").await;
    let addr = server.tls_addr().to_string();
    let known = dir.join("known");
    let mut rosa = tls_client(&addr, &known, &["--tls", "--nick", "rosa"]);
    let rosa = tokio::task::spawn_blocking(move || {
        rosa.expect("welcome rosa");
        rosa.send("/fault rst");
        rosa.expect("fault rst");
        rosa
    })
    .await
    .expect("rosa");
    let left = watcher
        .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "rosa"))
        .await;
    let ServerMsg::Left { reason, .. } = left else {
        unreachable!()
    };
    assert_eq!(
        reason.map(|r| r.code().to_string()),
        Some("reset".to_string()),
        "stderr: {}",
        server.stderr()
    );
    drop(rosa);
}

#[test]
fn unusable_tls_settings_are_config_errors() {
    let run = |cmd: &mut Command| {
        let out = cmd.stdin(Stdio::null()).output().expect("run the binary");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let cfg = sockchat_tests::config_file(
        "tls-missing",
        "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
    );
    let (code, err) = run(Command::new(sockchat_tests::bin("sockchat-server"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read /nonexistent/c.pem"), "{err}");
    let cfg = sockchat_tests::config_file("tls-half", "[tls]\ncert = \"/x.pem\"\n");
    let (code, err) = run(Command::new(sockchat_tests::bin("sockchat-server"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.cert and tls.key go together"), "{err}");
    let (code, err) = run(&mut sockchat_command(&[
        "--plain",
        "--tls-fingerprint",
        "SHA256:12:34",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a SHA-256 fingerprint"), "{err}");
}

/// A client refused at admission (per-address cap) reads why inside TLS,
/// in its own format, as a plain client does.
#[test]
fn a_refused_tls_client_reads_why_inside_tls() {
    require!(
        has("openssl"),
        "openssl is not installed (test.sh installs it)"
    );
    let dir = temp_dir("cap");
    let cfg = tls_config("tls-cap", "max_connections_per_ip = 1\n", "", &dir);
    let server = server_with(&cfg);
    let addr = server.tls_addr().to_string();
    let mut first = tool("openssl", &["s_client", "-quiet", "-connect", &addr]);
    first.expect("welcome");
    let mut second = tool("openssl", &["s_client", "-quiet", "-connect", &addr]);
    let l = second.expect("too many connections");
    assert!(l.contains("(max 1)"), "{l}");
    // And the framed sockchat client gets it as an Error frame.
    let known = dir.join("known");
    let mut c = tls_client(&addr, &known, &["--tls"]);
    c.expect("too many connections");
    assert_eq!(c.finish(), 1, "{:?}", c.seen);
}

/// In a real terminal: the first-contact line in the event log, and the
/// socket panel's `tls` line with version and cipher next to the TCP
/// numbers of the real socket.
#[test]
fn the_tui_shows_the_pin_and_the_cipher_in_the_socket_panel() {
    use sockchat_tests::tmux::Tmux;
    require!(
        Tmux::available(),
        "tmux is not installed (./test.sh installs it)"
    );
    let dir = temp_dir("tui");
    let server = tls_server(&dir.join("data"), &[]);
    let fp = server.tls_fingerprint.clone().expect("fingerprint");
    let addr = server.tls_addr();
    let known = dir.join("known");
    let tmux = Tmux::new("tls");
    tmux.client(
        "tina",
        160,
        45,
        &format!(
            "--server {addr} --tls --known-servers {} --nick tina",
            known.display()
        ),
    );
    tmux.wait_for("tina", "welcome tina");
    let screen = tmux.wait_for("tina", "TLS13_");
    println!("{screen}");
    assert!(screen.contains("TLSv1.3 TLS13_"), "{screen}");
    assert!(screen.contains("ESTABLISHED"), "{screen}");
    assert!(screen.contains("cwnd"), "TCP_INFO still shown:\n{screen}");
    // The pinned fingerprint is on file (the log line may be cut by the
    // screen's width).
    let pins = std::fs::read_to_string(&known).expect("pinned");
    assert!(pins.contains(&fp), "{pins}");
    assert!(screen.contains("first contact"), "{screen}");
}
