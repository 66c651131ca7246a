//! Soak: nothing lost, proven. The real server binary; *stayers* (framed
//! clients that join several rooms first and keep reading to the end, a
//! few of them slow readers) chat in many rooms while *churners* come and go
//! and end abruptly (FIN, RST, a close with replies unread, a frame cut
//! in half, `/quit`) and real
//! `sockchat --plain` processes are killed with SIGKILL.
//!
//! Checked at the end, from what every stayer received:
//! - a stayer's message (accepted: its echo came back) reached every other
//!   stayer of its room exactly once and in order;
//! - a churner's messages reached all stayers of a room identically (same
//!   list, in order, no duplicates), and what the server accepted from one
//!   connection is a prefix of what it sent (every echo it read included);
//! - every departure was announced once per room to every stayer there, with
//!   one reason from the abrupt-end vocabulary;
//! - the server's users, rooms, tasks (`SIGUSR1` stats line) and open fds
//!   (`/proc/PID/fd`) are back to their values before the churn, and to
//!   the empty server's once the stayers leave.
//!
//! `SOCKCHAT_SOAK_SECS` sets the churn phase (default 40 s; a longer soak:
//! `SOCKCHAT_SOAK_SECS=600 cargo test -p sockchat-tests --test soak --
//! --nocapture`). The figures are printed for docs/RELIABILITY.md.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockchat_shared::{ClientMsg, DisconnectReason, ServerMsg, codec};
use sockchat_tests::{FramedClient, ServerProc, sockchat_command};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

const ROOMS: usize = 8;
const STAYERS: usize = 12;
/// Stayers that read slowly: a small receive buffer ([`SLOW_RCVBUF`]), and
/// a pause of `SLOW_PAUSE` every `SLOW_EVERY` messages, so the server's
/// outbox for them really holds a backlog (yet they keep up on average).
const SLOW: usize = 3;
/// The slow stayers' `SO_RCVBUF`. Not smaller: with 4 KiB, now and then
/// (2 runs in ~15 on a busy machine) the receiver's window settled just
/// under the sender's MSS (`ss -ti`: `snd_wnd:2017`, `mss:2048`,
/// `rwnd_limited` 99 %, `timer:(persist,...)`, the reader's Recv-Q empty):
/// the server's kernel then sent only on its persist timer, ~10 KB/s, less
/// than the room's traffic, and the backlog never drained — a zero-window
/// stall of the kernels, not of the server, that failed the test.
const SLOW_RCVBUF: u32 = 16 * 1024;
const SLOW_EVERY: u64 = 150;
const SLOW_PAUSE: Duration = Duration::from_millis(1000);
/// Stayers' lines are padded to this many bytes, and the server's
/// SO_SNDBUF is small (`SOAK_CONFIG`), so a slow reader's pause leaves
/// tens of messages in its outbox instead of in kernel buffers.
const PAD: usize = 250;
/// A deep outbox: a slow reader must not be cut off for being slow. And a
/// rate limit no stayer can reach: the server charges a message when it
/// reads it, so if it reads a stayer late (a busy CI machine) a backlog of
/// lines sent at 10/s is charged as a burst, and a refused line would fail
/// the count for a reason that is not this test's (server_limits.rs tests
/// the limit).
const SOAK_CONFIG: &str = "[server]\nsend_buffer = 8192\noutbox_frames = 8192\n\
                           [limits]\nmessages_per_sec = 1000.0\nburst = 10000.0\n";
const ROOMS_PER_STAYER: usize = 3;
const CHURNERS: usize = 6;
/// `sockchat --plain` processes alive at once, each killed with SIGKILL.
const KILLED_AT_ONCE: usize = 2;

fn room(i: usize) -> String {
    format!("soak{i}")
}

/// A stayer's rooms: every room has at least two stayers.
fn stayer_rooms(s: usize) -> Vec<String> {
    (0..ROOMS_PER_STAYER)
        .map(|k| room((s + k * 3) % ROOMS))
        .collect()
}

/// `soak NICK SEQ`: what every chat line carries.
fn parse(text: &str) -> Option<(&str, u64)> {
    let mut w = text.strip_prefix("soak ")?.split(' ');
    let nick = w.next()?;
    let seq = w.next()?.parse().ok()?;
    Some((nick, seq))
}

/// What one stayer saw.
#[derive(Default, Debug)]
struct Seen {
    /// (sender, room) -> sequence numbers in arrival order.
    chat: BTreeMap<(String, String), Vec<u64>>,
    /// Its own messages echoed back, per room: the accepted ones.
    echoed: BTreeMap<String, Vec<u64>>,
    /// (nick, room) -> reasons of the `Left`s received.
    left: BTreeMap<(String, String), Vec<Option<DisconnectReason>>>,
    /// (nick, room) -> `Joined`s received.
    joined: BTreeMap<(String, String), u32>,
    /// Stayers whose END marker arrived.
    ends: BTreeSet<String>,
}

fn record(seen: &mut Seen, me: &str, m: ServerMsg) {
    match m {
        ServerMsg::Chat {
            room, from, text, ..
        } => {
            if let Some(rest) = text.strip_prefix("soak-end ") {
                seen.ends.insert(rest.to_string());
            } else if let Some((nick, seq)) = parse(&text) {
                assert_eq!(nick, from, "a chat line names its sender");
                if from == me {
                    seen.echoed.entry(room).or_default().push(seq);
                } else {
                    seen.chat.entry((from, room)).or_default().push(seq);
                }
            }
        }
        ServerMsg::Left { room, nick, reason } => {
            seen.left.entry((nick, room)).or_default().push(reason);
        }
        ServerMsg::Joined { room, nick } => {
            *seen.joined.entry((nick, room)).or_default() += 1;
        }
        ServerMsg::Bye { reason } => panic!("{me} was disconnected: {reason}"),
        ServerMsg::Error { code, text } => panic!("{me} got error {code:?}: {text}"),
        _ => {}
    }
}

/// A framed client whose socket has a [`SLOW_RCVBUF`] receive buffer (set
/// before the handshake, so the window stays small).
async fn connect_small_rcvbuf(addr: SocketAddr, nick: &str) -> FramedClient {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(SLOW_RCVBUF).expect("SO_RCVBUF");
    let mut stream = sock.connect(addr).await.expect("connect");
    stream
        .write_all(&sockchat_shared::proto::preamble())
        .await
        .expect("preamble");
    let mut c = FramedClient::from_stream(stream);
    c.send(&ClientMsg::Hello { nick: nick.into() }).await;
    match c.recv().await {
        ServerMsg::Welcome { nick, .. } => c.nick = nick,
        other => panic!("expected Welcome, got {other:?}"),
    }
    c
}

/// A stayer's nick, rooms and what it saw.
type Stayed = (String, Vec<String>, Seen);

/// One stayer: joins its rooms, says one line every ~100 ms in turn in
/// each of them until `stop`, then `soak-end NICK` in each, and reads until
/// every stayer of its rooms said its END.
async fn stayer(
    addr: SocketAddr,
    s: usize,
    go: Arc<tokio::sync::Barrier>,
    stop: Arc<tokio::sync::Notify>,
    done_sending: Arc<tokio::sync::Barrier>,
) -> Stayed {
    let nick = format!("stay{s}");
    let slow = s < SLOW;
    let mut c = if slow {
        connect_small_rcvbuf(addr, &nick).await
    } else {
        FramedClient::connect(addr, &nick).await
    };
    let rooms = stayer_rooms(s);
    c.send(&ClientMsg::Leave {
        room: "lobby".into(),
    })
    .await;
    for r in &rooms {
        c.send(&ClientMsg::Join { room: r.clone() }).await;
        c.recv_until(
            |m| matches!(m, ServerMsg::Joined { room, nick: n } if room == r && *n == nick),
        )
        .await;
    }
    go.wait().await;
    let mut seen = Seen::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // After a slow reader's pause, go on at the same pace instead of
    // sending the missed ticks in a burst (which a slow machine could
    // stretch past the server's rate limit).
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut read = 0u64;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let mut send = false;
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => send = true,
            m = c.recv_timeout(Duration::from_secs(30)) => {
                let m = m.unwrap_or_else(|e| panic!("{nick}: {e}")).unwrap_or_else(|| panic!("{nick}: EOF"));
                record(&mut seen, &nick, m);
                read += 1;
                if slow && read.is_multiple_of(SLOW_EVERY) {
                    tokio::time::sleep(SLOW_PAUSE).await;
                }
            }
        }
        if send {
            let r = &rooms[(seq as usize) % rooms.len()];
            c.send(&ClientMsg::Say {
                room: r.clone(),
                text: format!("soak {nick} {seq} {:x<PAD$}", ""),
            })
            .await;
            seq += 1;
        }
    }
    // Every churner is gone (the test waited for the server's user count):
    // the END markers come after all their deliveries in every outbox.
    done_sending.wait().await;
    for r in &rooms {
        c.send(&ClientMsg::Say {
            room: r.clone(),
            text: format!("soak-end {nick}"),
        })
        .await;
    }
    let peers: BTreeSet<String> = (0..STAYERS)
        .filter(|&o| stayer_rooms(o).iter().any(|r| rooms.contains(r)))
        .map(|o| format!("stay{o}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.ends != peers {
        assert!(
            Instant::now() < deadline,
            "{nick}: END markers missing: {:?}",
            peers.difference(&seen.ends)
        );
        match c.recv_timeout(Duration::from_secs(30)).await {
            Ok(Some(m)) => record(&mut seen, &nick, m),
            other => panic!("{nick}: waiting for END markers: {other:?}"),
        }
    }
    // An error for one of our END markers (refused: its room's members
    // would wait for it in vain) arrives after the others' markers: read
    // on briefly so that it is named here (`record` panics on it).
    while let Ok(Some(m)) = c.recv_timeout(Duration::from_millis(300)).await {
        record(&mut seen, &nick, m);
    }
    c.send(&ClientMsg::Quit {
        message: String::new(),
    })
    .await;
    (nick, rooms, seen)
}

/// What one churner connection did: its nick, the rooms it asked for, how
/// many lines it sent, the echoes it read.
#[derive(Debug, Default)]
struct Churn {
    sent: u64,
    echoed: BTreeSet<u64>,
}

/// One churner: connect, join 1-3 rooms, chat a little, end abruptly in
/// one of five ways; again until `deadline`.
async fn churner(
    addr: SocketAddr,
    w: usize,
    deadline: Instant,
    ids: Arc<AtomicU64>,
    log: Arc<Mutex<BTreeMap<String, Churn>>>,
    ends: Arc<Mutex<BTreeMap<&'static str, u64>>>,
) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    while Instant::now() < deadline {
        let nick = format!("churn{}", ids.fetch_add(1, Ordering::Relaxed));
        let Ok(mut c) = FramedClient::connect_raw(addr).await else {
            continue;
        };
        c.send(&ClientMsg::Hello { nick: nick.clone() }).await;
        let mut churn = Churn::default();
        let mut joined = Vec::new();
        for k in 0..(1 + next() % 3) {
            let r = room(((next() + k) as usize) % ROOMS);
            c.send(&ClientMsg::Join { room: r.clone() }).await;
            joined.push(r);
        }
        let lines = next() % 12;
        for _ in 0..lines {
            // Only in rooms it joined (the server read the Join first), so
            // every line it sends is accepted unless the end cuts it off.
            let r = joined[(next() as usize) % joined.len()].clone();
            c.send(&ClientMsg::Say {
                room: r,
                text: format!("soak {nick} {}", churn.sent),
            })
            .await;
            churn.sent += 1;
            tokio::time::sleep(Duration::from_millis(next() % 30)).await;
            while let Ok(Some(m)) = c.recv_timeout(Duration::from_millis(1)).await {
                if let ServerMsg::Chat { from, text, .. } = &m
                    && *from == nick
                    && let Some((_, seq)) = parse(text)
                {
                    churn.echoed.insert(seq);
                }
            }
        }
        let how = match next() % 5 {
            0 => "fin",
            1 => "rst",
            2 => "half-frame",
            3 => "quit",
            _ => "close-unread",
        };
        match how {
            "fin" => {
                let _ = c.stream.shutdown().await;
            }
            "rst" => {
                // SO_LINGER 0: close sends RST (zero-length linger never blocks).
                let _ = socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO));
            }
            "half-frame" => {
                let f = codec::client_frame(&ClientMsg::Say {
                    room: String::new(),
                    text: "never whole".into(),
                });
                let _ = c.stream.write_all(&f[..f.len() / 2]).await;
            }
            "quit" => {
                let _ = c
                    .stream
                    .write_all(&codec::client_frame(&ClientMsg::Quit {
                        message: "churn".into(),
                    }))
                    .await;
            }
            _ => {}
        }
        drop(c);
        *ends.lock().unwrap().entry(how).or_default() += 1;
        log.lock().unwrap().insert(nick, churn);
        tokio::time::sleep(Duration::from_millis(next() % 50)).await;
    }
}

/// A real `sockchat --plain` process that joins a room, says a few lines
/// and is then killed with SIGKILL (the kernel closes its socket).
fn spawn_plain(addr: SocketAddr, nick: &str, r: &str, lines: u64) -> (Child, ChildStdin) {
    use std::io::Write;
    let mut child = sockchat_command(&["--plain", "--server", &addr.to_string(), "--nick", nick])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sockchat --plain");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = writeln!(stdin, "/join {r}");
    for i in 0..lines {
        let _ = writeln!(stdin, "soak {nick} {i}");
    }
    // Stdin stays open until the kill (EOF would make it quit politely).
    (child, stdin)
}

/// What each of the stayers `ms` recorded about `key` (a sender or a
/// departing user in a room), from the map `pick` chooses.
fn per_member<T: Clone + Default>(
    ms: &[usize],
    results: &[Stayed],
    key: &(String, String),
    pick: impl Fn(&Seen) -> &BTreeMap<(String, String), T>,
) -> Vec<T> {
    ms.iter()
        .map(|&m| pick(&results[m].2).get(key).cloned().unwrap_or_default())
        .collect()
}

/// The server's `stats users=N rooms=N tasks=N` line after a SIGUSR1.
fn stats(server: &ServerProc) -> (u64, u64, u64) {
    let before = server.stderr().matches(" stats ").count();
    server.signal(libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = server.stderr();
        if err.matches(" stats ").count() > before {
            let line = err
                .lines()
                .rev()
                .find(|l| l.contains(" stats "))
                .expect("stats line");
            let field = |k: &str| -> u64 {
                let i = line
                    .find(&format!("{k}="))
                    .unwrap_or_else(|| panic!("{k} in {line}"));
                line[i + k.len() + 1..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or_else(|| panic!("{k} in {line}"))
            };
            return (field("users"), field("rooms"), field("tasks"));
        }
        assert!(Instant::now() < deadline, "no stats line after SIGUSR1");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fds(server: &ServerProc) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("/proc/PID/fd")
        .count()
}

/// Users, rooms, tasks, fds: waits (up to 20 s) until they equal `want`,
/// since a closed connection's tasks end a moment after its user is gone.
fn settle(server: &ServerProc, want: (u64, u64, u64, usize)) -> (u64, u64, u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (u, r, t) = stats(server);
        let now = (u, r, t, fds(server));
        if now == want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits at `b` unless a stayer ends first — it panicked (or returned
/// early): its panic is raised here instead of a wait that never ends.
async fn meet(b: &tokio::sync::Barrier, stayers: &mut JoinSet<(usize, Stayed)>) {
    tokio::select! {
        _ = b.wait() => {}
        Some(r) = stayers.join_next() => match r {
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            other => panic!("a stayer ended before the others: {other:?}"),
        },
    }
}

/// What the test is doing now, for the message if it runs out of time.
type Phase = Arc<Mutex<&'static str>>;

fn phase(p: &Phase, now: &'static str) {
    *p.lock().unwrap() = now;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_lost_under_churn() {
    let secs: u64 = std::env::var("SOCKCHAT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    // Every wait below is bounded on its own; this bounds their sum, so
    // that a bug shows as a failure naming the phase, never as a hang.
    let limit = Duration::from_secs(secs + 240);
    let now = Phase::new(Mutex::new("start"));
    if tokio::time::timeout(limit, soak(secs, now.clone()))
        .await
        .is_err()
    {
        panic!(
            "soak: not done after {limit:?}, still in phase {:?}",
            now.lock().unwrap()
        );
    }
}

async fn soak(secs: u64, now: Phase) {
    let started = Instant::now();
    let server = ServerProc::start_with_config("soak", SOAK_CONFIG, &[]);
    let addr = server.addr;
    let empty = tokio::task::block_in_place(|| {
        let (u, r, t) = stats(&server);
        (u, r, t, fds(&server))
    });

    let go = Arc::new(tokio::sync::Barrier::new(STAYERS + 1));
    let stop = Arc::new(tokio::sync::Notify::new());
    let done_sending = Arc::new(tokio::sync::Barrier::new(STAYERS + 1));
    let mut stayers = JoinSet::new();
    for s in 0..STAYERS {
        let (go, stop, done) = (go.clone(), stop.clone(), done_sending.clone());
        stayers.spawn(async move { (s, stayer(addr, s, go, stop, done).await) });
    }
    phase(&now, "stayers joining their rooms");
    meet(&go, &mut stayers).await;
    let steady = {
        let (u, r, t) = tokio::task::block_in_place(|| stats(&server));
        (u, r, t, tokio::task::block_in_place(|| fds(&server)))
    };
    assert_eq!(steady.0, STAYERS as u64, "users before the churn");

    // The churn.
    phase(&now, "churn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let ids = Arc::new(AtomicU64::new(0));
    let log = Arc::new(Mutex::new(BTreeMap::new()));
    let ends = Arc::new(Mutex::new(BTreeMap::new()));
    let mut churners = Vec::new();
    for w in 0..CHURNERS {
        churners.push(tokio::spawn(churner(
            addr,
            w,
            deadline,
            ids.clone(),
            log.clone(),
            ends.clone(),
        )));
    }
    let killer = tokio::task::spawn_blocking(move || {
        let mut killed = 0u64;
        let mut n = 0usize;
        while Instant::now() < deadline {
            let kids: Vec<(Child, ChildStdin)> = (0..KILLED_AT_ONCE)
                .map(|k| {
                    n += 1;
                    spawn_plain(
                        addr,
                        &format!("kill{n}"),
                        &room((n + k) % ROOMS),
                        3 + (n % 4) as u64,
                    )
                })
                .collect();
            std::thread::sleep(Duration::from_millis(700));
            for (mut k, stdin) in kids {
                let _ = k.kill(); // SIGKILL
                let _ = k.wait();
                drop(stdin);
                killed += 1;
            }
        }
        killed
    });
    for c in churners {
        c.await.expect("churner");
    }
    phase(&now, "killing the last sockchat --plain processes");
    let killed = killer.await.expect("killer");
    // Wait until every churner's session has ended on the server.
    phase(&now, "waiting for the churners' sessions to end");
    let after_churn = tokio::task::block_in_place(|| settle(&server, steady));
    stop.notify_waiters();
    phase(&now, "stopping the stayers");
    meet(&done_sending, &mut stayers).await;
    phase(&now, "stayers waiting for every END marker");
    let mut results: Vec<(usize, Stayed)> = Vec::new();
    while let Some(r) = stayers.join_next().await {
        results.push(r.expect("stayer"));
    }
    results.sort_by_key(|(s, _)| *s);
    let results: Vec<Stayed> = results.into_iter().map(|(_, r)| r).collect();
    phase(&now, "waiting for the server to be empty");
    let end = tokio::task::block_in_place(|| {
        let mut want = empty;
        // The default room exists from the first user on.
        want.1 = want.1.max(1);
        settle(&server, want)
    });

    // ---- the checks
    phase(&now, "checking");
    let log = log.lock().unwrap();
    let members = |r: &str| -> Vec<usize> {
        (0..STAYERS)
            .filter(|&s| stayer_rooms(s).iter().any(|x| x == r))
            .collect()
    };
    let mut checked = 0u64;
    let mut accepted = 0u64;
    // Stayers' messages: exactly the echoed list at every other member.
    for (nick, rooms, seen) in &results {
        for r in rooms {
            let echoed = seen.echoed.get(r).cloned().unwrap_or_default();
            assert!(!echoed.is_empty(), "{nick} said nothing in {r}");
            accepted += echoed.len() as u64;
            for m in members(r) {
                let (other, _, theirs) = &results[m];
                if other == nick {
                    continue;
                }
                let got = theirs
                    .chat
                    .get(&(nick.clone(), r.clone()))
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(
                    got, echoed,
                    "{other} got {nick}'s lines in {r}: lost, doubled or reordered"
                );
                checked += got.len() as u64;
            }
        }
    }
    // Churners (and the killed processes): the same list at every member
    // of a room, in order; across rooms a prefix of what was sent.
    let mut senders: BTreeSet<String> = BTreeSet::new();
    for (_, _, seen) in &results {
        senders.extend(
            seen.chat
                .keys()
                .map(|(n, _)| n.clone())
                .filter(|n| !n.starts_with("stay")),
        );
        // Stayers quit at the very end: their Lefts are not churn.
        senders.extend(
            seen.left
                .keys()
                .map(|(n, _)| n.clone())
                .filter(|n| !n.starts_with("stay")),
        );
    }
    let mut departures = 0u64;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for who in &senders {
        let mut union: BTreeSet<u64> = BTreeSet::new();
        for r in (0..ROOMS).map(room) {
            let ms = members(&r);
            let key = (who.clone(), r.clone());
            let lists: Vec<Vec<u64>> = per_member(&ms, &results, &key, |s| &s.chat);
            for (i, l) in lists.iter().enumerate() {
                assert_eq!(
                    l, &lists[0],
                    "{who} in {r}: {} and {} disagree",
                    results[ms[0]].0, results[ms[i]].0
                );
                assert!(
                    l.windows(2).all(|w| w[0] < w[1]),
                    "{who} in {r}: out of order or doubled: {l:?}"
                );
                checked += l.len() as u64;
            }
            accepted += lists[0].len() as u64;
            union.extend(&lists[0]);
            // Joined and Left: once each or not at all, the same at every member.
            let joins: Vec<u32> = per_member(&ms, &results, &key, |s| &s.joined);
            let lefts: Vec<Vec<Option<DisconnectReason>>> =
                per_member(&ms, &results, &key, |s| &s.left);
            for (j, l) in joins.iter().zip(&lefts) {
                assert!(
                    *j <= 1 && l.len() as u32 == *j,
                    "{who} in {r}: {j} joins, lefts {l:?}"
                );
                assert_eq!(l, &lefts[0], "{who} in {r}: departure told differently");
                if let Some(reason) = l.first() {
                    let reason = reason
                        .clone()
                        .unwrap_or_else(|| panic!("{who} left {r} without a reason"));
                    assert!(
                        matches!(
                            reason,
                            DisconnectReason::Eof
                                | DisconnectReason::Reset
                                | DisconnectReason::BrokenPipe
                                | DisconnectReason::Quit { .. }
                                | DisconnectReason::ProtocolError { .. }
                        ),
                        "{who} left {r}: {reason}"
                    );
                    departures += 1;
                    *reasons.entry(reason.code()).or_default() += 1;
                }
            }
            if !lists[0].is_empty() {
                assert_eq!(joins[0], 1, "{who} spoke in {r} without a Joined");
            }
        }
        if let Some(max) = union.last() {
            assert_eq!(
                union.len() as u64,
                max + 1,
                "{who}: accepted lines are not a prefix: {union:?}"
            );
        }
        if let Some(c) = log.get(who) {
            assert!(
                union.is_superset(&c.echoed),
                "{who}: echoed lines missing at the stayers"
            );
            assert!(union.len() as u64 <= c.sent);
        }
    }

    println!(
        "soak: {secs} s of churn, {} stayers ({SLOW} slow) in {ROOMS} rooms, {} churner connections \
         (ends {:?}), {killed} sockchat --plain processes killed with SIGKILL",
        STAYERS,
        log.len(),
        ends.lock().unwrap(),
    );
    println!(
        "soak: {accepted} accepted messages, {checked} deliveries checked, 0 lost, 0 duplicated, 0 reordered; \
         {departures} departures announced once each ({reasons:?})"
    );
    println!(
        "soak: (users, rooms, tasks, fds) empty {empty:?}, steady {steady:?}, after churn {after_churn:?}, \
         after all left {end:?}; {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        after_churn, steady,
        "users, rooms, tasks, fds after the churn"
    );
    let mut want = empty;
    want.1 = want.1.max(1);
    assert_eq!(end, want, "users, rooms, tasks, fds once everyone left");
    assert!(
        killed > 0 && log.len() > 20,
        "not much churn: {killed} killed, {} churners",
        log.len()
    );
    let _ = server;
}
