//! File transfer end to end (issue 11): two real `sockchat --plain --json`
//! clients through the real server, over TCP, over UDP with the client's
//! loss injector, and across transports; files verified byte for byte.
//! Decline, cancel from either side, the size limit, hostile names from a
//! hostile sender, and a receiver that stops reading (the server's RSS
//! stays within the window).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockchat_shared::transfer::Xfer;
use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::random_file::write_random;
use sockchat_tests::{FramedClient, Plain, ServerProc, sockchat_command};

/// A fresh folder for one test, removed when the test ends (pass or
/// fail: these hold tens of megabytes).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn dir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("sockchat-xfer-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// The big-file tests take turns: each needs about 100 MB of disk.
static BIG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn big_turn() -> std::sync::MutexGuard<'static, ()> {
    BIG.lock().unwrap_or_else(|p| p.into_inner())
}

/// A plain JSON client saving into `downloads`.
fn client(s: &ServerProc, nick: &str, downloads: &Path, extra: &[&str], step: Duration) -> Plain {
    let addr = s.addr.to_string();
    let dl = downloads.to_str().unwrap();
    let mut args = vec![
        "--json",
        "--no-reconnect",
        "--server",
        &addr,
        "--nick",
        nick,
        "--download-dir",
        dl,
    ];
    args.extend_from_slice(extra);
    let mut p = Plain::spawn(
        &mut sockchat_command(&args),
        format!("{nick} {extra:?}"),
        step,
    );
    p.expect_event("welcome", |_| true);
    p
}

/// alice offers `file` to bob, bob accepts; returns both done events.
fn send_and_accept(
    a: &mut Plain,
    b: &mut Plain,
    file: &Path,
) -> (serde_json::Value, serde_json::Value) {
    a.send(&format!("/send {} bob", file.display()));
    a.expect_event("transfer-offer-sent", |_| true);
    let offer = b.expect_event("transfer-offered", |v| v["from"] == "alice");
    b.send(&format!("/accept {}", offer["id"]));
    // A receiver that never finishes is usually the sender's story (its
    // retransmissions, its RTO): show both sides' lines then.
    let got = with_other_side(a, || b.expect_event("transfer-done", |_| true));
    let sent = with_other_side(b, || a.expect_event("transfer-done", |_| true));
    (sent, got)
}

/// Run `wait`; if it panics, print every line `other` said so far before
/// the panic goes on.
fn with_other_side<T>(other: &mut Plain, wait: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(wait)) {
        Ok(v) => v,
        Err(e) => {
            other.take_pending();
            eprintln!("[{}] said:\n{}", other.name, other.seen.join("\n"));
            std::panic::resume_unwind(e)
        }
    }
}

fn same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(x.len(), y.len(), "{} vs {}", a.display(), b.display());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

const STEP: Duration = Duration::from_secs(120);

#[test]
fn fifty_mb_over_tcp_arrives_verified() {
    let _turn = big_turn();
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("tcp-src"), dir("tcp-dl"));
    let file = src.join("big.bin");
    write_random(&file, 50 << 20, 7);
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut b = client(&s, "bob", &dl, &[], STEP);
    let t = Instant::now();
    let (sent, got) = send_and_accept(&mut a, &mut b, &file);
    eprintln!("50 MB over TCP in {:?}: {sent}", t.elapsed());
    assert_eq!(got["verified"], true);
    assert_eq!(got["size"], 50 << 20);
    assert_eq!(sent["transport"], "tcp");
    let saved = PathBuf::from(got["saved"].as_str().unwrap());
    assert_eq!(saved, dl.join("big.bin"));
    same_file(&file, &saved);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dl).unwrap().count(), 1);
    // A second file of the same name never overwrites the first.
    std::fs::remove_file(&saved).unwrap();
    std::fs::write(&saved, b"already here").unwrap();
    let sub = src.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("big.bin"), b"second").unwrap();
    let (_, again) = send_and_accept(&mut a, &mut b, &sub.join("big.bin"));
    assert_eq!(
        PathBuf::from(again["saved"].as_str().unwrap()),
        dl.join("big (1).bin")
    );
    assert_eq!(std::fs::read(&saved).unwrap(), b"already here");
}

#[test]
fn udp_with_injected_loss_recovers_every_datagram() {
    let _turn = big_turn();
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("udp-src"), dir("udp-dl"));
    let file = src.join("lossy.bin");
    write_random(&file, 50 << 20, 11);
    let lossy = ["--udp", "--udp-drop", "0.05"];
    let mut a = client(&s, "alice", &src, &lossy, STEP);
    let mut b = client(&s, "bob", &dl, &lossy, STEP);
    let (sent, got) = send_and_accept(&mut a, &mut b, &file);
    eprintln!("50 MiB over UDP, 5 % dropped each way: {sent}");
    assert_eq!(sent["transport"], "udp");
    let retx = sent["retransmitted"].as_u64().unwrap();
    assert!(
        retx > 0,
        "5 % of datagrams dropped but nothing retransmitted: {sent}"
    );
    same_file(&file, Path::new(got["saved"].as_str().unwrap()));
}

/// Over UDP a transfer's control messages can be lost like any datagram;
/// a lost Offer, Accept or Done used to leave both sides waiting for ever
/// (the integration runs' "0 chunks in 300 s" and "~125 s" were this, not
/// GSO: docs/BENCHMARKS.md). They are said again until answered (PROTOCOL.md
/// "Over UDP"). Each client drops 15 % of its datagrams: without the
/// repeats at least one of the 30 control messages of ten small transfers
/// is lost with probability 1 - 0.85^30 > 99 %, and the test fails at its
/// step timeout. (Two-chunk files: the data path at this loss is the
/// retransmission timer's business, not this test's.)
#[test]
fn lost_offers_accepts_and_dones_are_said_again() {
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("ctl-src"), dir("ctl-dl"));
    let lossy = ["--udp", "--udp-drop", "0.15"];
    let step = Duration::from_secs(60);
    let mut a = client(&s, "alice", &src, &lossy, step);
    let mut b = client(&s, "bob", &dl, &lossy, step);
    for i in 0..10u64 {
        let file = src.join(format!("small{i}.bin"));
        write_random(&file, 2 << 10, 100 + i);
        let (sent, got) = send_and_accept(&mut a, &mut b, &file);
        assert_eq!(sent["transport"], "udp", "{sent}");
        assert_eq!(got["verified"], true, "{got}");
        same_file(&file, Path::new(got["saved"].as_str().unwrap()));
    }
}

#[test]
fn tcp_sender_to_udp_receiver_and_back() {
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("x-src"), dir("x-dl"));
    let file = src.join("cross.bin");
    write_random(&file, 2 << 20, 3);
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut b = client(&s, "bob", &dl, &["--udp"], STEP);
    let (_, got) = send_and_accept(&mut a, &mut b, &file);
    same_file(&file, Path::new(got["saved"].as_str().unwrap()));
    // And UDP -> TCP.
    b.send(&format!("/send {} alice", file.display()));
    let offer = a.expect_event("transfer-offered", |v| v["from"] == "bob");
    a.send(&format!("/accept {}", offer["id"]));
    let back = a.expect_event("transfer-done", |_| true);
    same_file(&file, Path::new(back["saved"].as_str().unwrap()));
}

#[test]
fn decline_writes_nothing() {
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("dec-src"), dir("dec-dl"));
    let file = src.join("no.txt");
    std::fs::write(&file, b"not wanted").unwrap();
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut b = client(&s, "bob", &dl, &[], STEP);
    a.send(&format!("/send {} bob", file.display()));
    b.expect_event("transfer-offered", |_| true);
    assert_eq!(
        std::fs::read_dir(&dl).unwrap().count(),
        0,
        "nothing before accept"
    );
    b.send("/decline");
    let f = a.expect_event("transfer-failed", |_| true);
    assert!(f["why"].as_str().unwrap().contains("declined"), "{f}");
    assert_eq!(std::fs::read_dir(&dl).unwrap().count(), 0);
}

/// A big sparse file: hashing is fast, sending takes seconds.
fn big_sparse(path: &Path, len: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

#[test]
fn cancel_from_either_side_mid_transfer() {
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("cancel-src"), dir("cancel-dl"));
    let file = src.join("sparse.bin");
    big_sparse(&file, 1 << 30);
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut b = client(&s, "bob", &dl, &[], STEP);
    for (canceller, other) in [("bob", "alice"), ("alice", "bob")] {
        a.send(&format!("/send {} bob", file.display()));
        let offer = b.expect_event("transfer-offered", |_| true);
        b.send(&format!("/accept {}", offer["id"]));
        // Bytes are moving: the receiver reports progress.
        b.expect_event("transfer-progress", |v| v["bytes"].as_u64().unwrap() > 0);
        let (c, o) = if canceller == "bob" {
            (&mut b, &mut a)
        } else {
            (&mut a, &mut b)
        };
        c.send("/cancel");
        let mine = c.expect_event("transfer-failed", |_| true);
        assert!(
            mine["why"].as_str().unwrap().contains("cancelled by you"),
            "{mine}"
        );
        let theirs = o.expect_event("transfer-failed", |_| true);
        assert!(
            theirs["why"]
                .as_str()
                .unwrap()
                .contains(&format!("cancelled by {canceller}")),
            "{other} saw {theirs}"
        );
        // The receiver's temporary file is gone.
        let left: Vec<_> = std::fs::read_dir(&dl).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
fn oversize_is_refused_by_the_server() {
    let s =
        ServerProc::start_with_config("xfer-oversize", "[transfer]\nmax_file_size = 1000\n", &[]);
    let (src, dl) = (dir("big-src"), dir("big-dl"));
    let file = src.join("big.txt");
    std::fs::write(&file, vec![b'x'; 2000]).unwrap();
    let mut a = client(&s, "alice", &src, &[], STEP);
    let _b = client(&s, "bob", &dl, &[], STEP);
    a.send(&format!("/send {} bob", file.display()));
    let f = a.expect_event("transfer-failed", |_| true);
    let why = f["why"].as_str().unwrap();
    assert!(why.contains("too-big") && why.contains("1000"), "{why}");
}

/// A hostile sender (speaking the protocol itself) offers dangerous names;
/// the real client saves each under a safe base name in its folder.
#[test]
fn hostile_names_are_saved_safely() {
    let s = ServerProc::start(&[]);
    let dl = dir("names-dl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut b = client(&s, "bob", &dl, &[], STEP);
    let mut evil = rt.block_on(FramedClient::connect(s.addr, "mallory"));
    let cases = [
        ("../../etc/passwd", "passwd"),
        ("CON", "_CON"),
        ("..", "file"),
        ("x\u{1b}[2J\u{202e}txt.exe", "x_[2J_txt.exe"),
    ];
    for (i, (name, want)) in cases.iter().enumerate() {
        let data = Bytes::from(format!("payload {i}"));
        let sha = sockchat_tests::sha256sum(&data);
        let id = i as u64 + 1;
        rt.block_on(evil.send(&ClientMsg::Transfer(Xfer::Offer {
            id,
            peer: "bob".into(),
            name: name.to_string(),
            size: data.len() as u64,
            sha256: sha,
        })));
        let offer = b.expect_event("transfer-offered", |_| true);
        b.send(&format!("/accept {}", offer["id"]));
        rt.block_on(async {
            match evil
                .recv_until(|m| matches!(m, ServerMsg::Transfer(Xfer::Accept { .. })))
                .await
            {
                ServerMsg::Transfer(Xfer::Accept { id: got, .. }) => assert_eq!(got, id),
                _ => unreachable!(),
            }
            evil.send(&ClientMsg::Transfer(Xfer::Chunk {
                id,
                offset: 0,
                data: data.clone(),
            }))
            .await;
        });
        let done = b.expect_event("transfer-done", |_| true);
        let saved = PathBuf::from(done["saved"].as_str().unwrap());
        assert_eq!(saved, dl.join(want), "{name:?}");
        assert_eq!(std::fs::read(&saved).unwrap(), data);
    }
    assert!(!Path::new("/etc/passwd.sockchat").exists());
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A receiver that accepts and then stops reading its socket: the sender
/// stalls once a window is unacknowledged, and the server holds no more
/// than that window (its RSS does not grow by the file's size).
#[test]
fn a_receiver_that_stops_reading_does_not_grow_the_server() {
    let s = ServerProc::start(&[]);
    let src = dir("stall-src");
    let file = src.join("sparse.bin");
    big_sparse(&file, 200 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut b = rt.block_on(FramedClient::connect(s.addr, "bob"));
    let before = rss_kb(s.pid());
    a.send(&format!("/send {} bob", file.display()));
    // The offer comes once the file is hashed.
    a.expect_event("transfer-offer-sent", |_| true);
    let id = rt.block_on(async {
        match b
            .recv_until(|m| matches!(m, ServerMsg::Transfer(Xfer::Offer { .. })))
            .await
        {
            ServerMsg::Transfer(x) => x.id(),
            _ => unreachable!(),
        }
    });
    rt.block_on(b.send(&ClientMsg::Transfer(Xfer::Accept {
        id,
        offset: 0,
        window: 0,
        max_chunk: 0,
        lossless: false,
    })));
    a.expect_event("transfer-started", |_| true);
    // bob never reads again. Give the sender time to push all it can.
    std::thread::sleep(Duration::from_secs(3));
    let p = a.expect_event("transfer-progress", |_| true);
    let after = rss_kb(s.pid());
    eprintln!("server RSS {before} kB -> {after} kB; sender {p}");
    assert_eq!(p["bytes"], 0, "nothing acknowledged: {p}");
    // One 1 MiB window, plus allocator slack; the file is 200 MiB.
    assert!(
        after < before + 8 * 1024,
        "server RSS grew from {before} kB to {after} kB with a stalled receiver"
    );
    drop(b);
    // The receiver is gone: the sender pauses and waits for it to resume.
    let f = a.expect_event("transfer-paused", |_| true);
    assert!(f["why"].as_str().unwrap().contains("peer-gone"), "{f}");
}

/// `printf '/send FILE bob\n' | sockchat --plain`: the /send typed before
/// the session waits for it, and the end of input waits for the transfer;
/// the exit status is 0 once bob has the file.
#[test]
fn a_piped_send_waits_for_the_session_and_the_transfer() {
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("pipe-src"), dir("pipe-dl"));
    let file = src.join("piped.txt");
    std::fs::write(&file, b"sent from a script\n").unwrap();
    let mut b = client(&s, "bob", &dl, &[], STEP);
    let addr = s.addr.to_string();
    let args = [
        "--json",
        "--no-reconnect",
        "--server",
        &addr,
        "--nick",
        "alice",
    ];
    let mut a = Plain::spawn(&mut sockchat_command(&args), "alice piped", STEP);
    a.send(&format!("/send {} bob", file.display()));
    a.stdin = None; // end of input at once
    let offer = b.expect_event("transfer-offered", |v| v["from"] == "alice");
    // alice is still there, waiting for the answer.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "alice quit before the transfer ended"
    );
    b.send(&format!("/accept {}", offer["id"]));
    b.expect_event("transfer-done", |_| true);
    assert_eq!(a.finish(), 0, "{}", a.seen.join("\n"));
    assert!(
        a.seen.iter().any(|l| l.contains("\"transfer-done\"")),
        "{}",
        a.seen.join("\n")
    );
    assert_eq!(
        std::fs::read(dl.join("piped.txt")).unwrap(),
        b"sent from a script\n"
    );
}

/// A client that reconnects (100 ms back-off) with its own config file.
fn reconnecting(s: &ServerProc, nick: &str, downloads: &Path, cfg: &Path) -> Plain {
    let addr = s.addr.to_string();
    let args = [
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--server",
        &addr,
        "--nick",
        nick,
        "--download-dir",
        downloads.to_str().unwrap(),
    ];
    let mut p = Plain::spawn(&mut sockchat_command(&args), nick.to_string(), STEP);
    p.expect_event("welcome", |_| true);
    p
}

/// Resume (issue 11 item 1): `side` ("alice", the sender, or "bob", the
/// receiver) resets its connection (`/fault rst`: RST, ECONNRESET at the
/// server) mid-transfer; its client reconnects, the sender offers again,
/// the receiver accepts from the offset it has, and the file arrives with
/// its SHA-256 verified. The server's `rate_per_user` (4 MB/s) keeps the
/// 24 MiB transfer going for ~6 s, long enough to cut it in the middle.
fn resume_after_reset(side: &str) {
    let _turn = big_turn();
    let s = ServerProc::start_with_config(
        &format!("resume-{side}"),
        "[transfer]\nrate_per_user = 4000000\n",
        &[],
    );
    let cfg = sockchat_tests::config_file(
        &format!("resume-client-{side}"),
        "[client]\nreconnect_initial_ms = 100\nreconnect_max_ms = 500\n",
    );
    let (src, dl) = (
        dir(&format!("resume-src-{side}")),
        dir(&format!("resume-dl-{side}")),
    );
    let file = src.join("resumed.bin");
    write_random(&file, 24 << 20, 23);
    let mut a = reconnecting(&s, "alice", &src, &cfg);
    let mut b = reconnecting(&s, "bob", &dl, &cfg);
    a.send(&format!("/send {} bob", file.display()));
    let offer = b.expect_event("transfer-offered", |v| v["from"] == "alice");
    b.send(&format!("/accept {}", offer["id"]));
    // Some bytes have moved (not all: the rate holds it to ~6 s).
    let p = b.expect_event("transfer-progress", |v| v["bytes"].as_u64() > Some(0));
    assert!(p["bytes"].as_u64().unwrap() < 24 << 20, "{p}");
    let (cut, other) = if side == "alice" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    cut.send("/fault rst");
    // Both sides pause (ours: connection lost; theirs: peer-gone)...
    let mine = cut.expect_event("transfer-paused", |_| true);
    let theirs = other.expect_event("transfer-paused", |_| true);
    assert!(
        theirs["why"].as_str().unwrap().contains("peer-gone"),
        "{theirs}"
    );
    let paused_at = mine["bytes"].as_u64().unwrap();
    // ...the cut side is welcomed again, and both resume.
    cut.expect_event("welcome", |_| true);
    let resumed = b.expect_event("transfer-resumed", |_| true);
    a.expect_event("transfer-resumed", |_| true);
    let offset = resumed["offset"].as_u64().unwrap();
    assert!(
        offset > 0 && offset < 24 << 20,
        "resumed from {offset}, not from where it stopped (paused at {paused_at}): {resumed}"
    );
    let got = b.expect_event("transfer-done", |_| true);
    let sent = a.expect_event("transfer-done", |_| true);
    assert_eq!(got["verified"], true, "{got}");
    eprintln!("resumed at {offset} B after {side}'s reset: {sent}");
    same_file(&file, Path::new(got["saved"].as_str().unwrap()));
    // The receiver's one temporary file became the saved file.
    assert_eq!(std::fs::read_dir(&dl).unwrap().count(), 1);
}

#[test]
fn resume_after_the_senders_connection_is_reset() {
    resume_after_reset("alice");
}

#[test]
fn resume_after_the_receivers_connection_is_reset() {
    resume_after_reset("bob");
}

/// `[transfer] rate_per_user`: a 6 MiB file at 3 MB/s takes about 2 s
/// (loopback alone does it in well under 0.1 s); without the limit the
/// same server config moves it at once. Asserted loosely: at least 1.5 s.
#[test]
fn rate_per_user_paces_the_sender() {
    let s = ServerProc::start_with_config("rate", "[transfer]\nrate_per_user = 3000000\n", &[]);
    let (src, dl) = (dir("rate-src"), dir("rate-dl"));
    let file = src.join("paced.bin");
    write_random(&file, 6 << 20, 31);
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut b = client(&s, "bob", &dl, &[], STEP);
    let (sent, got) = send_and_accept(&mut a, &mut b, &file);
    let ms = got["elapsed_ms"].as_u64().unwrap();
    eprintln!("6 MiB at rate_per_user 3 MB/s: {ms} ms; {sent}");
    assert!(ms >= 1500, "6 MiB at 3 MB/s took only {ms} ms: not paced");
    same_file(&file, Path::new(got["saved"].as_str().unwrap()));
}

/// `[client] auto_accept`: an offer from a listed nick is accepted without
/// asking (and saved); one from anyone else still waits for /accept.
#[test]
fn auto_accept_from_named_nicks_only() {
    let s = ServerProc::start(&[]);
    let (src, dl) = (dir("auto-src"), dir("auto-dl"));
    let file = src.join("auto.txt");
    std::fs::write(&file, b"no questions asked\n").unwrap();
    let cfg = sockchat_tests::config_file("auto-accept", "[client]\nauto_accept = [\"ALICE\"]\n");
    let mut b = reconnecting(&s, "bob", &dl, &cfg);
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut c = client(&s, "carol", &src, &[], STEP);
    a.send(&format!("/send {} bob", file.display()));
    let got = b.expect_event("transfer-done", |_| true);
    a.expect_event("transfer-done", |_| true);
    assert_eq!(
        std::fs::read(got["saved"].as_str().unwrap()).unwrap(),
        b"no questions asked\n"
    );
    c.send(&format!("/send {} bob", file.display()));
    b.expect_event("transfer-offered", |v| v["from"] == "carol");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !b.seen
            .iter()
            .any(|l| l.contains("transfer-started") && l.contains("carol")),
        "carol's offer was accepted without asking: {}",
        b.seen.join("\n")
    );
}

/// `/send PATH #lobby` between real clients: bob and carol each get the
/// offer; bob accepts (and gets the file, verified), carol declines; alice
/// sees one transfer per member, each with its own end.
#[test]
fn a_room_offer_is_accepted_or_declined_by_each_member() {
    let s = ServerProc::start(&[]);
    let (src, dl_b, dl_c) = (dir("room-src"), dir("room-dl-b"), dir("room-dl-c"));
    let file = src.join("minutes.txt");
    write_random(&file, 300_000, 41);
    let mut a = client(&s, "alice", &src, &[], STEP);
    let mut b = client(&s, "bob", &dl_b, &[], STEP);
    let mut c = client(&s, "carol", &dl_c, &["--udp"], STEP);
    a.send(&format!("/send {} #lobby", file.display()));
    let ob = b.expect_event("transfer-offered", |v| v["from"] == "alice");
    let oc = c.expect_event("transfer-offered", |v| v["from"] == "alice");
    c.send(&format!("/decline {}", oc["id"]));
    b.send(&format!("/accept {}", ob["id"]));
    let got = b.expect_event("transfer-done", |_| true);
    same_file(&file, Path::new(got["saved"].as_str().unwrap()));
    let sent = a.expect_event("transfer-done", |v| v["peer"] == "bob");
    assert_eq!(sent["verified"], true);
    // carol's decline may come before or after bob's done.
    a.seen_or_expect_event("transfer-failed", |v| {
        v["peer"] == "carol" && v["why"].as_str().unwrap_or("").contains("declined")
    });
    assert_eq!(
        std::fs::read_dir(&dl_c).unwrap().count(),
        0,
        "carol declined"
    );
}
