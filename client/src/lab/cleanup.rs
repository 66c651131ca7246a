//! Nothing the lab creates may outlive it: network namespaces and child
//! processes are registered here while they exist. `Drop` guards remove
//! them on success, failure and panic; this module covers the remaining
//! exit path, a signal (Ctrl-C, SIGTERM, SIGHUP), where no destructor runs.
//!
//! How: the lab blocks those signals in every thread before it starts any
//! (so they are only ever *pending*, never delivered asynchronously), and one
//! thread takes them with `sigwait`, removes everything registered, and
//! exits. Child processes get the default signal mask back before `exec`.

use std::process::Command;
use std::sync::Mutex;

/// Something to remove if the lab is interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Netns(String),
    Pid(u32),
}

static LIVE: Mutex<Vec<Resource>> = Mutex::new(Vec::new());

/// Held by the signal thread from the signal until its `exit`: the main
/// thread, finishing a scenario whose namespaces that thread is deleting,
/// must not return from `main` (exit status 0 or 1) before it.
static EXITING: Mutex<()> = Mutex::new(());

fn live() -> std::sync::MutexGuard<'static, Vec<Resource>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Register `r`, then run `create` (which makes it exist) while still
/// holding the registry: an interrupt cannot slip in between, so the signal
/// thread never deletes a namespace that an `ip netns add` still running
/// would create a moment later, nor misses a child just spawned.
pub fn create_registered<T>(r: Resource, create: impl FnOnce() -> T) -> T {
    let mut g = live();
    g.push(r);
    create()
}

/// Like [`create_registered`] when the resource is only known after
/// creation (a child's pid).
pub fn create_then_register<T>(create: impl FnOnce() -> (T, Option<Resource>)) -> T {
    let mut g = live();
    let (t, r) = create();
    g.extend(r);
    t
}

pub fn unregister(r: &Resource) {
    live().retain(|x| x != r);
}

const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block the signals in this thread (and so in every thread spawned after)
/// and start the thread that handles them. Call once, before any thread.
pub fn install() {
    let set = signal_set();
    // SAFETY: changes this thread's mask only; set is initialised.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let spawned = std::thread::Builder::new()
        .name("lab-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait with an initialised set and a valid out-pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                let _exiting = EXITING.lock().unwrap_or_else(|p| p.into_inner());
                let left = remove_all();
                eprintln!(
                    "lab: interrupted by signal {sig}; removed {left} namespace(s)/process(es) it had created"
                );
                std::process::exit(128 + sig);
            }
        });
    if spawned.is_err() {
        // Without the handler thread, restore default delivery rather than
        // leave signals blocked forever.
        // SAFETY: as above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

/// Call before the lab returns: if a signal is being handled, wait for
/// the signal thread's `exit(128 + signal)` instead of racing it with our
/// own exit status.
pub fn hold_exit() {
    drop(EXITING.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Kill registered children, delete registered namespaces.
fn remove_all() -> usize {
    let all: Vec<Resource> = std::mem::take(&mut *live());
    for r in &all {
        match r {
            // SAFETY: kill(2) on a child we spawned and have not reaped yet.
            Resource::Pid(pid) => unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            },
            Resource::Netns(name) => delete_netns(name),
        }
    }
    all.len()
}

/// Delete a namespace, retrying for up to 2 s: a signal can land while an
/// `ip -n NS ...` of the setup is still inside it, and then the kernel
/// refuses to remove the namespace file for a moment ("Cannot remove
/// namespace file ... Device or resource busy").
fn delete_netns(name: &str) {
    let path = std::path::Path::new("/run/netns").join(name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let ok = child_command("ip")
            .args(["netns", "del", name])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok || !path.exists() || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A `Command` whose process starts with no signals blocked (it must not
/// inherit the lab's blocked mask: SIGTERM has to work on it).
pub fn child_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(program);
    // SAFETY: the closure runs between fork and exec and only calls
    // sigemptyset and pthread_sigmask, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd
}
