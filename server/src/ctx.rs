//! What every session shares, whatever its transport: the settings, the
//! hub, the shutdown, the id counter, and the admission limits (the global
//! `limits.max_connections` permits and the per-address cap), so that TCP
//! connections and UDP sessions are counted together, as config.toml says;
//! who may come in (`[access]`, operators' bans, `[auth]` passwords).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use sockchat_shared::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::Access;
use crate::auth::Auth;
use crate::config::Settings;
use crate::hub::Hub;
use crate::limits::{IpSlot, PerIpLimit};
use crate::operators::Bans;
use crate::shutdown::Shutdown;

/// The name the server gives itself in `Welcome`.
pub fn server_name() -> String {
    format!("sockchat-server {}", env!("CARGO_PKG_VERSION"))
}

/// Shared by every connection, UDP session and accept loop.
#[derive(Debug)]
pub struct Ctx {
    pub settings: Arc<Settings>,
    pub hub: Arc<Hub>,
    pub shutdown: Shutdown,
    pub next_id: AtomicU64,
    pub server_name: String,
    /// The file transfers being relayed (`[transfer]`).
    pub transfers: crate::transfer::Registry,
    /// `limits.max_connections` permits: one per TCP connection or UDP
    /// session.
    slots: Arc<Semaphore>,
    /// `limits.max_connections_per_ip`, TCP and UDP together (none with
    /// `--no-rate-limits`).
    per_ip: Option<PerIpLimit>,
    /// `[access]`: allow/deny lists, `/sockinfo` address policy.
    pub access: Access,
    /// `[auth]`: the server and operator passwords, registered nicks.
    pub auth: Arc<Auth>,
    /// Operators' bans (checked here at admission for addresses).
    pub bans: Arc<Bans>,
    /// Cluster mode (`[cluster]`): private messages and `/sockinfo` for
    /// nicks on other nodes.
    pub cluster: Option<Arc<crate::cluster::Link>>,
}

/// What an admitted session holds for its whole life (released on drop).
#[derive(Debug)]
pub struct Admission {
    pub permit: OwnedSemaphorePermit,
    pub ip_slot: Option<IpSlot>,
}

/// Why a new session was refused: the error code and the text the client
/// gets.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub text: String,
}

impl Ctx {
    pub fn new(
        settings: Arc<Settings>,
        hub: Arc<Hub>,
        shutdown: Shutdown,
        auth: Auth,
        bans: Bans,
        cluster: Option<Arc<crate::cluster::Link>>,
    ) -> Self {
        let l = &settings.config.limits;
        let slots = Arc::new(Semaphore::new(
            l.max_connections, // validated: at most MAX_PERMITS
        ));
        let per_ip = (!settings.no_rate_limits).then(|| PerIpLimit::new(l.max_connections_per_ip));
        Ctx {
            hub,
            shutdown,
            next_id: AtomicU64::new(1),
            server_name: server_name(),
            transfers: crate::transfer::Registry::new(
                settings.config.transfer.clone(),
                settings.config.udp.max_payload,
                settings.config.server.outbox_frames,
            ),
            slots,
            per_ip,
            access: Access::new(&settings.config.access),
            auth: Arc::new(auth),
            bans: Arc::new(bans),
            cluster,
            settings,
        }
    }

    /// Admit one more session from `ip` (TCP connection or UDP session):
    /// a global permit and a per-address slot, or why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        self.access.admits(ip).map_err(|text| Refusal {
            code: ErrorCode::Forbidden,
            text,
        })?;
        let now = std::time::Instant::now();
        if let Some(ban) = self.bans.find(None, ip, now) {
            return Err(Refusal {
                code: ErrorCode::Banned,
                text: ban.refusal(now),
            });
        }
        let max = self.settings.config.limits.max_connections;
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Err(Refusal {
                code: ErrorCode::ServerFull,
                text: format!("server full ({max} connections); try again later"),
            });
        };
        let ip_slot = match &self.per_ip {
            None => None,
            Some(l) => Some(l.try_acquire(ip).ok_or_else(|| Refusal {
                code: ErrorCode::TooManyFromAddress,
                text: format!("too many connections from {ip} (max {})", l.max()),
            })?),
        };
        Ok(Admission { permit, ip_slot })
    }
}
