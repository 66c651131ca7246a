//! The real `sockchat lab` on this machine: every scenario matches what
//! Linux is expected to do, and `--json` keeps the DESIGN.md schema.
//!
//! Needs the built binary (`cargo build --bins`, as `./test.sh` does). The
//! pulled-cable scenarios need root for network namespaces: without root they
//! are reported as skipped, which this test prints locally and treats as a
//! failure under CI (`sockchat_tests::require`; CI runs as root, where
//! nothing may be skipped).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sockchat_tests::{is_root, require};

fn sockchat_bin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/sockchat");
    assert!(
        p.exists(),
        "{} not built: run `cargo build --bins` (./test.sh does) before the tests",
        p.display()
    );
    p
}

/// Run `sockchat ARGS` with a hard deadline: killed (and the test fails) if
/// it takes longer.
fn run(args: &[&str], limit: Duration) -> Output {
    run_pid(args, limit).0
}

/// [`run`], also returning the process id it had.
fn run_pid(args: &[&str], limit: Duration) -> (Output, u32) {
    let mut cmd = Command::new(sockchat_bin());
    cmd.args(args);
    run_cmd(cmd, limit)
}

/// Run a prepared command with a hard deadline; (output, pid).
fn run_cmd(mut cmd: Command, limit: Duration) -> (Output, u32) {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A freshly copied binary can be "busy" (ETXTBSY) for a moment: another
    // test thread may fork while our copy's write descriptor is open, and the
    // forked child holds it until its own exec. Retry briefly.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.expect("spawn sockchat"),
        }
    };
    let pid = child.id();
    // Drain the pipes on threads so a chatty child never blocks on them.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sockchat {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        status,
        stdout: t_out.join().expect("stdout thread"),
        stderr: t_err.join().expect("stderr thread"),
    };
    (out, pid)
}

fn listed_names() -> Vec<String> {
    let out = run(&["lab", "--list"], Duration::from_secs(10));
    assert!(out.status.success(), "lab --list failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn lab_json_every_scenario_passes() {
    let names = listed_names();
    for must in [
        "normal-close",
        "close-unread",
        "linger-zero",
        "kill9-sending",
        "kill9-unread",
        "write-after-close",
        "connect-refused",
        "half-close",
        "zero-window",
        "cable-pulled-send",
        "cable-pulled-idle",
        "server-restart",
        "reuseaddr-timewait",
        "reuseport-spread",
        "accept-later",
        "backlog-full",
        "send-vs-sendall",
        "udp-peer-gone",
        "udp-refused",
        "udp-naive-sender",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "scenario {must} missing from --list: {names:?}"
        );
    }

    let (out, pid) = run_pid(&["lab", "--json"], Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut seen = Vec::new();
    let mut failures = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        // The DESIGN.md schema.
        let scenario = v["scenario"]
            .as_str()
            .expect("scenario: string")
            .to_string();
        assert!(
            v["action"].as_str().is_some_and(|s| !s.is_empty()),
            "action: {line}"
        );
        assert!(
            v["observed"].as_str().is_some_and(|s| !s.is_empty()),
            "observed: {line}"
        );
        assert!(
            v["expected"].as_str().is_some_and(|s| !s.is_empty()),
            "expected: {line}"
        );
        assert!(v["errno"].is_null() || v["errno"].is_i64(), "errno: {line}");
        let pass = v["pass"].as_bool().expect("pass: bool");
        // Consistency: pass means observed == expected, errno included.
        if pass {
            assert_eq!(v["observed"], v["expected"], "{line}");
            assert_eq!(v["errno"], v["expected_errno"], "{line}");
        }
        if !pass {
            let skipped = v["status"] == "skipped";
            if skipped && !is_root() {
                // The lab skips what needs root; fine locally, a failure
                // under CI (which runs as root, where nothing may skip).
                require(
                    false,
                    &format!(
                        "lab_run: {scenario} skipped (not root): {}",
                        v["skip_reason"]
                    ),
                );
            } else {
                failures.push(line.to_string());
            }
        }
        seen.push(scenario);
    }
    assert_eq!(
        seen, names,
        "every listed scenario reports exactly once, in order\nstderr: {stderr}"
    );
    assert!(
        failures.is_empty(),
        "scenarios that did not match Linux:\n{}\nstderr: {stderr}",
        failures.join("\n")
    );
    assert!(
        out.status.success(),
        "exit status {:?} although every scenario passed",
        out.status
    );
    // Spot checks of the kernel facts themselves, not just the pass flags.
    let get = |name: &str| -> serde_json::Value {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["scenario"] == name)
            .expect("scenario line")
    };
    assert_eq!(get("close-unread")["errno"], 104);
    assert_eq!(get("write-after-close")["errno"], 32);
    assert_eq!(get("connect-refused")["errno"], 111);
    assert_eq!(get("udp-refused")["errno"], 111);
    assert_eq!(get("kill9-sending")["observed"], "eof");
    assert_eq!(get("kill9-unread")["observed"], "reset");
    if is_root() {
        assert_eq!(get("cable-pulled-send")["errno"], 110);
        assert_eq!(get("cable-pulled-idle")["errno"], 110);
    }
    // No namespace of this run may outlive it (other labs may be running:
    // names carry the lab's pid).
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(
                !(n.starts_with("sclab-") && n.contains(&format!("-{pid}-"))),
                "namespace {n} left behind"
            );
        }
    }
}

#[test]
fn lab_only_runs_one_and_rejects_unknown_names() {
    let out = run(
        &["lab", "--json", "--only", "udp-refused"],
        Duration::from_secs(20),
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(v["scenario"], "udp-refused");
    assert_eq!(v["observed"], "refused");

    let out = run(
        &["lab", "--only", "no-such-scenario"],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown scenario"), "{stderr}");

    // The table form: a header, the row, the summary.
    let out = run(
        &["lab", "--only", "connect-refused"],
        Duration::from_secs(20),
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SCENARIO"), "{stdout}");
    assert!(stdout.contains("111 ECONNREFUSED"), "{stdout}");
    assert!(stdout.contains("1 passed, 0 failed, 0 skipped"), "{stdout}");
}

/// The two pulled-cable scenarios, as (scenario, status, skip_reason, pass).
fn cable_results(out: &Output) -> Vec<(String, String, String, bool)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (
                v["scenario"].as_str().unwrap_or_default().to_string(),
                v["status"].as_str().unwrap_or_default().to_string(),
                v["skip_reason"].as_str().unwrap_or_default().to_string(),
                v["pass"].as_bool().expect("pass"),
            )
        })
        .collect()
}

const CABLE: [&str; 6] = [
    "lab",
    "--json",
    "--only",
    "cable-pulled-send",
    "--only",
    "cable-pulled-idle",
];

/// Without `ip` the pulled cable is SKIPPED with the reason, not passed, and
/// a skip alone does not make the lab fail.
#[test]
fn cable_skipped_without_iproute2() {
    let mut cmd = Command::new(sockchat_bin());
    cmd.args(CABLE).env("PATH", "/nonexistent");
    let (out, _) = run_cmd(cmd, Duration::from_secs(20));
    let r = cable_results(&out);
    assert_eq!(r.len(), 2, "{r:?}");
    for (name, status, why, pass) in &r {
        if is_root() {
            assert_eq!(status, "skipped", "{name}");
            assert!(why.contains("iproute2"), "{name}: {why}");
        } else {
            assert!(why.contains("root"), "{name}: {why}");
        }
        assert!(!pass, "{name} counted as passed although skipped");
    }
    assert!(
        out.status.success(),
        "a skip is not a failure: {:?}",
        out.status
    );
}

/// Without root the pulled cable is SKIPPED with the reason. Run as
/// `nobody` from a copy of the binary in a world-readable directory (the
/// checkout itself may not be readable to other users).
#[test]
fn cable_skipped_without_root() {
    use std::os::unix::process::CommandExt as _;
    // Already not root: nothing to drop (the main test sees the skip).
    sockchat_tests::require!(
        is_root(),
        "cable_skipped_without_root: needs root to drop to `nobody`"
    );
    let dir = std::env::temp_dir().join(format!("sockchat-lab-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = dir.join("sockchat");
    std::fs::copy(sockchat_bin(), &exe).expect("copy binary");
    let mut cmd = Command::new(&exe);
    cmd.args(CABLE).uid(65534).gid(65534).current_dir(&dir);
    let (out, _) = run_cmd(cmd, Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&dir);
    let r = cable_results(&out);
    assert_eq!(
        r.len(),
        2,
        "{r:?} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, status, why, pass) in &r {
        assert_eq!(status, "skipped", "{name}");
        assert!(why.contains("root"), "{name}: {why}");
        assert!(!pass, "{name}");
    }
    assert!(out.status.success(), "{:?}", out.status);
}

/// Namespaces of lab process `pid` that exist right now.
fn namespaces_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("sclab-") && n.contains(&format!("-{pid}-")))
                .collect()
        })
        .unwrap_or_default()
}

/// Ctrl-C in the middle of the pulled cable: no destructor runs on a
/// signal, so the lab's signal thread must remove the namespaces itself.
#[test]
fn interrupted_lab_leaves_no_namespace_behind() {
    sockchat_tests::require!(
        is_root(),
        "interrupted_lab_leaves_no_namespace_behind: not root, the lab creates no namespaces here"
    );
    let mut child = Command::new(sockchat_bin())
        .args(["lab", "--json", "--only", "cable-pulled-idle"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lab");
    let pid = child.id();
    // Wait for its three namespaces (host, switch, host) to exist.
    let deadline = Instant::now() + Duration::from_secs(10);
    while namespaces_of(pid).len() < 3 {
        if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the lab never had its namespaces up: {:?}",
                namespaces_of(pid)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the lab did not exit after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{status:?} {err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(
        namespaces_of(pid),
        Vec::<String>::new(),
        "left behind after SIGINT"
    );
}
