//! Running code inside a network namespace: a thread that joins it with
//! setns(2). Used by the pulled-cable scenarios (their sockets) and by the
//! `--wire` capture on the namespaces' veth.

use std::io;
use std::os::fd::AsRawFd;

use anyhow::Context as _;

/// Run `f` on a thread that has joined namespace `ns`. Sockets created
/// there belong to that namespace for life, whichever thread uses them later.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    let h = std::thread::spawn(move || -> io::Result<T> {
        let file = std::fs::File::open(&path)?;
        // SAFETY: setns on this thread only, with a valid namespace fd.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        f()
    });
    match h.join() {
        Ok(r) => r.with_context(|| format!("inside namespace {ns}")),
        Err(_) => anyhow::bail!("namespace thread panicked"),
    }
}
