//! Passwords: the server password (`Pass`), the operator password
//! (`/oper`) and registered nicks (`/register`, `/identify`), all checked
//! with argon2. Registered nicks live in one file in the server's data dir
//! (`[auth] nicks_file`): one `NICK<TAB>argon2 PHC string` line each, hashes
//! only, rewritten whole through a temporary file and a rename (atomic),
//! mode 0600. Nicks are keyed by `fold::nick_key`, so a registered `alice`
//! also covers `ALICE` and `аlice`.
//!
//! A password is never logged, stored or echoed: only its hash is kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sockchat_shared::config::AuthConfig;
use sockchat_shared::{fold, names, secret};

/// Most registered nicks one server keeps (the file is read whole at start).
pub const MAX_REGISTERED: usize = 100_000;

/// An argon2 hash of a password, checked against what a user typed.
#[derive(Clone)]
pub struct Hash(String);

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hash(..)")
    }
}

impl Hash {
    /// Hash `password` with a fresh random salt (argon2id, default cost).
    pub fn new(password: &str) -> Result<Self, String> {
        let mut salt = [0u8; 16];
        getrandom(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        let h = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| e.to_string())?;
        Ok(Hash(h.to_string()))
    }

    /// A PHC string from the config or the nicks file (`$argon2id$...`).
    pub fn parse(phc: &str) -> Result<Self, String> {
        PasswordHash::new(phc).map_err(|e| format!("not an argon2 hash: {e}"))?;
        Ok(Hash(phc.to_string()))
    }

    /// Does `password` match? (argon2's own comparison: constant time.)
    pub fn verify(&self, password: &str) -> bool {
        PasswordHash::new(&self.0).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }
}

/// Fill `buf` from the kernel's random source.
fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// One configured password: plain text (hashed at start) or its hash.
fn configured(plain: &str, hash: &str) -> Result<Option<Hash>, String> {
    match (plain.is_empty(), hash.is_empty()) {
        (true, true) => Ok(None),
        (false, true) => Hash::new(plain).map(Some),
        (true, false) => Hash::parse(hash).map(Some),
        (false, false) => Err("set the password or its hash, not both".into()),
    }
}

/// Check `[auth]`: the key and why, for the first bad value.
pub fn check_config(c: &AuthConfig) -> Option<(&'static str, String)> {
    for (key, plain) in [
        ("auth.password", &c.password),
        ("auth.oper_password", &c.oper_password),
    ] {
        if !plain.is_empty()
            && let Err(e) = secret::check_password(plain)
        {
            return Some((key, e.to_string()));
        }
    }
    for (key, plain, hash) in [
        ("auth.password_hash", &c.password, &c.password_hash),
        (
            "auth.oper_password_hash",
            &c.oper_password,
            &c.oper_password_hash,
        ),
    ] {
        if !hash.is_empty() {
            if !plain.is_empty() {
                return Some((key, "set the password or its hash, not both".into()));
            }
            if let Err(e) = Hash::parse(hash) {
                return Some((key, e));
            }
        }
    }
    if let Some(bad) = c
        .operators
        .iter()
        .find(|n| names::check_nick(n, 255).is_err())
    {
        return Some(("auth.operators", format!("{bad:?} is not a nick")));
    }
    None
}

/// Why `/register` or `/identify` failed; the text is the user's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("wrong password for {0}")]
    BadPassword(String),
    #[error("{0} is not registered (/register PASSWORD registers your current nick)")]
    NotRegistered(String),
    #[error("{0} is already registered")]
    AlreadyRegistered(String),
    #[error("{0} is a guest nick: take a nick of your own (/nick NAME), then /register")]
    Guest(String),
    #[error("registration is off on this server")]
    Off,
    #[error("too many registered nicks on this server (max {MAX_REGISTERED})")]
    Full,
    #[error("{0}")]
    Secret(#[from] secret::SecretError),
    /// The nicks file could not be written (logged; the user is told it
    /// failed, not why).
    #[error("the server could not save the registration; try again later")]
    Io,
}

/// Cluster mode: where a nick registered here goes so every node knows it
/// ([`crate::cluster`]). Only queues.
pub trait ShareNicks: Send + Sync + std::fmt::Debug {
    /// `nick` was registered here with this argon2 PHC string.
    fn registered(&self, nick: &str, hash: &str);
}

/// The server's passwords and registered nicks (`[auth]`).
#[derive(Debug)]
pub struct Auth {
    server: Option<Hash>,
    oper: Option<Hash>,
    /// Nick keys of the operators' registered nicks.
    operators: Vec<String>,
    registration: bool,
    file: PathBuf,
    bans_file: PathBuf,
    /// Nick key -> (the nick as registered, its hash).
    nicks: Mutex<HashMap<String, (String, Hash)>>,
    /// Cluster mode: told of each registration made here.
    share: OnceLock<Arc<dyn ShareNicks>>,
}

impl Auth {
    /// From a checked `[auth]`; reads the nicks file (a missing one is
    /// empty). `data_dir` is where the nicks file goes when
    /// `auth.nicks_file` is empty.
    pub fn load(
        c: &AuthConfig,
        data_dir: impl FnOnce() -> Option<PathBuf>,
    ) -> Result<Self, String> {
        let (file, bans_file) = if c.nicks_file.is_empty() {
            let dir = data_dir()
                .ok_or("no data dir for the nicks file: set auth.nicks_file, tls.data_dir or XDG_DATA_HOME")?;
            (dir.join("nicks"), dir.join("bans"))
        } else {
            let mut bans = std::ffi::OsString::from(&c.nicks_file);
            bans.push(".bans");
            (PathBuf::from(&c.nicks_file), PathBuf::from(bans))
        };
        let nicks = read_nicks(&file)?;
        Ok(Auth {
            server: configured(&c.password, &c.password_hash)?,
            oper: configured(&c.oper_password, &c.oper_password_hash)?,
            operators: c.operators.iter().map(|n| fold::nick_key(n)).collect(),
            registration: c.registration,
            file,
            bans_file,
            nicks: Mutex::new(nicks),
            share: OnceLock::new(),
        })
    }

    fn nicks(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Hash)>> {
        self.nicks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the operators' bans are kept ([`crate::operators::Bans`]):
    /// `DATA_DIR/bans` beside the nicks file, or `NICKS_FILE.bans` when
    /// `auth.nicks_file` names one (so two servers with their own nicks
    /// files never share bans).
    pub fn bans_file(&self) -> PathBuf {
        self.bans_file.clone()
    }

    /// Does the server need a password before `Hello`?
    pub fn needs_password(&self) -> bool {
        self.server.is_some()
    }

    /// Is `password` the server's? (True when there is none.)
    pub fn server_password(&self, password: &str) -> bool {
        self.server.as_ref().is_none_or(|h| h.verify(password))
    }

    /// Is there an operator password, and is this it?
    pub fn oper_password(&self, password: &str) -> bool {
        self.oper.as_ref().is_some_and(|h| h.verify(password))
    }

    /// Is the registered nick with this key an operator?
    pub fn is_operator(&self, key: &str) -> bool {
        self.operators.iter().any(|k| k == key)
    }

    /// The nick as registered, if `nick` (folded) is registered.
    pub fn registered(&self, nick: &str) -> Option<String> {
        // Asked at every Hello: most servers register no nicks, and then
        // there is no key to fold (NFKC, case fold, confusables: a few µs,
        // issue 10's churn). The key is folded outside the lock.
        if self.nicks().is_empty() {
            return None;
        }
        let key = fold::nick_key(nick);
        self.nicks().get(&key).map(|(n, _)| n.clone())
    }

    /// Check `password` for registered `nick`; the nick key on success.
    pub fn identify(&self, nick: &str, password: &str) -> Result<String, AuthError> {
        let key = fold::nick_key(nick);
        let hash = match self.nicks().get(&key) {
            Some((_, h)) => h.clone(),
            None => return Err(AuthError::NotRegistered(nick.to_string())),
        };
        // Verified outside the lock: argon2 takes milliseconds.
        if hash.verify(password) {
            Ok(key)
        } else {
            Err(AuthError::BadPassword(nick.to_string()))
        }
    }

    /// Register `nick` with `password` and save the file; the nick key on
    /// success.
    pub fn register(&self, nick: &str, password: &str) -> Result<String, AuthError> {
        if !self.registration {
            return Err(AuthError::Off);
        }
        secret::check_password(password)?;
        if names::is_guest_nick(nick) {
            return Err(AuthError::Guest(nick.to_string()));
        }
        let key = fold::nick_key(nick);
        if self.nicks().contains_key(&key) {
            return Err(AuthError::AlreadyRegistered(nick.to_string()));
        }
        let hash = Hash::new(password).map_err(|e| {
            tracing::warn!(error = %e, "cannot hash a password");
            AuthError::Io
        })?;
        let mut nicks = self.nicks();
        if nicks.contains_key(&key) {
            return Err(AuthError::AlreadyRegistered(nick.to_string()));
        }
        if nicks.len() >= MAX_REGISTERED {
            return Err(AuthError::Full);
        }
        nicks.insert(key.clone(), (nick.to_string(), hash.clone()));
        if let Err(e) = write_nicks(&self.file, &nicks) {
            nicks.remove(&key);
            tracing::warn!(file = %self.file.display(), error = %e, "cannot save the nicks file");
            return Err(AuthError::Io);
        }
        drop(nicks);
        if let Some(s) = self.share.get() {
            s.registered(nick, &hash.0);
        }
        Ok(key)
    }

    /// Cluster mode: tell `s` of every registration made from now on.
    pub fn share_with(&self, s: Arc<dyn ShareNicks>) {
        let _ = self.share.set(s);
    }

    /// Every registration: (nick, argon2 PHC string).
    pub fn registrations(&self) -> Vec<(String, String)> {
        self.nicks()
            .values()
            .map(|(n, h)| (n.clone(), h.0.clone()))
            .collect()
    }

    /// Cluster mode: a registration made on another node (the cluster's
    /// record wins over a different one made here during a partition).
    /// Kept in memory; [`Auth::save`] writes the file. False when it was
    /// known already or is not an argon2 hash.
    pub fn learn(&self, nick: &str, phc: &str) -> bool {
        let Ok(hash) = Hash::parse(phc) else {
            return false;
        };
        let key = fold::nick_key(nick);
        let mut nicks = self.nicks();
        if nicks.len() >= MAX_REGISTERED && !nicks.contains_key(&key) {
            return false;
        }
        if let Some((_, old)) = nicks.get(&key) {
            if old.0 == hash.0 {
                return false;
            }
            tracing::warn!(
                nick,
                "registered nick: another node's registration replaces this one"
            );
        }
        nicks.insert(key, (nick.to_string(), hash));
        true
    }

    /// Write the nicks file (after [`Auth::learn`]).
    pub fn save(&self) {
        if let Err(e) = write_nicks(&self.file, &self.nicks()) {
            tracing::warn!(file = %self.file.display(), error = %e, "cannot save the nicks file");
        }
    }
}

/// The first line of the nicks file.
const HEADER: &str =
    "# sockchat-server registered nicks: NICK<TAB>argon2 hash (written by the server)";

/// Read the nicks file (missing: none).
fn read_nicks(path: &Path) -> Result<HashMap<String, (String, Hash)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut nicks = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("{} line {}: {why}", path.display(), i + 1);
        let (nick, phc) = line
            .split_once('\t')
            .ok_or_else(|| bad("expected NICK<TAB>HASH"))?;
        let hash = Hash::parse(phc).map_err(|e| bad(&e))?;
        nicks.insert(fold::nick_key(nick), (nick.to_string(), hash));
    }
    Ok(nicks)
}

/// Write the whole nicks file atomically: a temporary file beside it
/// (mode 0600), synced, then renamed over the old one, so a crash leaves
/// the old file or the new one, never half of one.
fn write_nicks(path: &Path, nicks: &HashMap<String, (String, Hash)>) -> std::io::Result<()> {
    let mut lines: Vec<String> = nicks
        .values()
        .map(|(nick, h)| format!("{nick}\t{}", h.0))
        .collect();
    lines.sort();
    let mut text = format!("{HEADER}\n");
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    crate::private_file::rewrite(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(file: &Path) -> AuthConfig {
        AuthConfig {
            nicks_file: file.display().to_string(),
            ..AuthConfig::default()
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sockchat-auth-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let h = Hash::new("hunter2").expect("hash");
        assert!(h.verify("hunter2"));
        assert!(!h.verify("hunter3"));
        assert!(!h.verify(""));
        assert!(!format!("{h:?}").contains("argon2"), "debug hides the hash");
        assert!(Hash::parse(&h.0).expect("parses").verify("hunter2"));
        assert!(Hash::parse("hunter2").is_err());
    }

    #[test]
    fn register_identify_and_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp("reg");
        let file = dir.join("sub/nicks");
        let a = Auth::load(&cfg(&file), || None).expect("load");
        assert_eq!(a.register("Alice", "pw1"), Ok(fold::nick_key("alice")));
        assert_eq!(
            a.register("\u{0430}lice", "pw2"),
            Err(AuthError::AlreadyRegistered("\u{0430}lice".into())),
            "a look-alike is the same nick"
        );
        assert_eq!(
            a.register("guest7", "pw"),
            Err(AuthError::Guest("guest7".into()))
        );
        assert!(matches!(
            a.register("bob", "a b"),
            Err(AuthError::Secret(_))
        ));
        assert_eq!(a.identify("ALICE", "pw1"), Ok(fold::nick_key("alice")));
        assert_eq!(
            a.identify("alice", "pw2"),
            Err(AuthError::BadPassword("alice".into()))
        );
        assert_eq!(
            a.identify("bob", "pw1"),
            Err(AuthError::NotRegistered("bob".into()))
        );
        assert_eq!(a.registered("alice").as_deref(), Some("Alice"));
        let text = std::fs::read_to_string(&file).expect("written");
        assert!(!text.contains("pw1"), "hashes only: {text}");
        assert!(text.contains("Alice\t$argon2id$"), "{text}");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            !file.with_extension("tmp").exists(),
            "the temporary file was renamed"
        );
        // A restarted server knows the nick.
        let b = Auth::load(&cfg(&file), || None).expect("reload");
        assert_eq!(b.identify("alice", "pw1"), Ok(fold::nick_key("alice")));
        let off = Auth::load(
            &AuthConfig {
                registration: false,
                ..cfg(&file)
            },
            || None,
        )
        .expect("load");
        assert_eq!(off.register("carol", "pw"), Err(AuthError::Off));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_the_line() {
        let dir = tmp("bad");
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("nicks");
        std::fs::write(&file, "# c\nalice no-tab\n").expect("write");
        let e = Auth::load(&cfg(&file), || None).expect_err("bad line");
        assert!(e.contains("line 2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn passwords_from_config() {
        let dir = tmp("cfg");
        let c = AuthConfig {
            password: "sesame".into(),
            oper_password_hash: Hash::new("root").expect("hash").0,
            operators: vec!["Alice".into()],
            ..cfg(&dir.join("nicks"))
        };
        assert_eq!(check_config(&c), None);
        let a = Auth::load(&c, || None).expect("load");
        assert!(a.needs_password());
        assert!(a.server_password("sesame") && !a.server_password("sesam"));
        assert!(a.oper_password("root") && !a.oper_password("sesame"));
        assert!(a.is_operator(&fold::nick_key("ALICE")));
        assert!(!a.is_operator(&fold::nick_key("bob")));
        let open = Auth::load(&cfg(&dir.join("nicks")), || None).expect("load");
        assert!(!open.needs_password() && open.server_password("anything"));
        assert!(
            !open.oper_password(""),
            "no operator password: nobody opers"
        );
        let both = AuthConfig {
            password_hash: Hash::new("x").expect("hash").0,
            ..c.clone()
        };
        assert_eq!(check_config(&both).map(|e| e.0), Some("auth.password_hash"));
        let bad = AuthConfig {
            oper_password_hash: "nope".into(),
            ..cfg(&dir.join("nicks"))
        };
        assert_eq!(
            check_config(&bad).map(|e| e.0),
            Some("auth.oper_password_hash")
        );
        let spaced = AuthConfig {
            password: "a b".into(),
            ..cfg(&dir.join("nicks"))
        };
        assert_eq!(check_config(&spaced).map(|e| e.0), Some("auth.password"));
        let ops = AuthConfig {
            operators: vec!["a b".into()],
            ..cfg(&dir.join("nicks"))
        };
        assert_eq!(check_config(&ops).map(|e| e.0), Some("auth.operators"));
    }
}
