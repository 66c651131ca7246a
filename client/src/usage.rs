//! The usage error: what `main` turns into exit code 2. A leaf module so
//! that every part of the client (the command line, the lab, the bots' plan)
//! can say "the user asked for something invalid" without importing the
//! command line that dispatches to it.

/// A usage or config error: the command line or the config file asks for
/// something invalid. `main` exits 2 for it (1 for every other failure).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `bail!` for usage errors.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}
