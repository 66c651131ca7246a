//! Password checks off the async threads. An argon2 check (`Pass`,
//! `Identify`, `Oper`) or hash (`Register`) takes ~20–50 ms of CPU and
//! 19 MiB: run on a tokio worker it would stall every connection of that
//! worker, and on UDP the one task that serves *every* UDP session. So
//! [`crate::session::Session`] does not check a password itself: it returns
//! [`Check`] (`Step::Check`), the transport parks that session (its later
//! messages wait, in order) and runs [`run`] — a bounded pool of blocking
//! threads — then hands the [`Verdict`] back to `Session::resume`.
//!
//! **Invariant:** a password lives only inside a [`Check`] until argon2 has
//! seen it; neither type prints it (`Debug` shows the kind only).

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

use crate::auth::AuthError;
use crate::ctx::Ctx;

/// Checks running at once, process-wide: each holds a thread and argon2's
/// 19 MiB, so a crowd typing passwords costs a few cores, not memory
/// without bound (the rest wait their turn, their sessions parked).
static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Semaphore::new(cores.clamp(1, 4))
});

/// A password to check, and for what.
pub(crate) enum Check {
    /// `Pass`: is it the server password?
    Server { password: String },
    /// `Identify`: does `nick` (registered) have this password?
    Identify { nick: String, password: String },
    /// `Register`: hash the password and save `nick` with it.
    Register { nick: String, password: String },
    /// `Oper`: is it the operator password?
    Oper { password: String },
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Check::Server { .. } => "Check::Server(..)",
            Check::Identify { .. } => "Check::Identify(..)",
            Check::Register { .. } => "Check::Register(..)",
            Check::Oper { .. } => "Check::Oper(..)",
        })
    }
}

/// The answer to a [`Check`] (no password in it).
#[derive(Debug)]
pub(crate) enum Verdict {
    Server(bool),
    /// The nick as asked, and its key or why not.
    Identify {
        nick: String,
        result: Result<String, AuthError>,
    },
    Register {
        nick: String,
        result: Result<String, AuthError>,
    },
    Oper(bool),
    /// The check itself could not run (its thread panicked, or the runtime
    /// is stopping): no answer either way.
    Unavailable,
}

impl Check {
    /// The blocking part: argon2 (and, for `Register`, the nicks file).
    fn decide(self, ctx: &Ctx) -> Verdict {
        let auth = &ctx.auth;
        match self {
            Check::Server { password } => Verdict::Server(auth.server_password(&password)),
            Check::Identify { nick, password } => {
                let result = auth.identify(&nick, &password);
                Verdict::Identify { nick, result }
            }
            Check::Register { nick, password } => {
                let result = auth.register(&nick, &password);
                Verdict::Register { nick, result }
            }
            Check::Oper { password } => Verdict::Oper(auth.oper_password(&password)),
        }
    }
}

/// Run `check` on a blocking thread once a slot of the pool is free.
pub(crate) async fn run(ctx: Arc<Ctx>, check: Check) -> Verdict {
    // The semaphore is never closed: `acquire` only fails on a closed one.
    let Ok(_slot) = SLOTS.acquire().await else {
        return Verdict::Unavailable;
    };
    tokio::task::spawn_blocking(move || check.decide(&ctx))
        .await
        .unwrap_or(Verdict::Unavailable)
}
