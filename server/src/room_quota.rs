//! Who created which room, so that no one user and no one address can fill
//! the server's room table (`limits.max_rooms`).
//!
//! A room counts against its creator (`limits.max_rooms_created_per_user`)
//! and its creator's address (`limits.max_rooms_created_per_ip`); both are
//! off with `--no-rate-limits` (load tests) for as long as it exists, whoever is in it now: a
//! creator who leaves a room that others keep alive does not get its quota
//! back (or one address could churn through the whole table). Rooms are
//! deleted when their last member leaves (`Hub::leave`), which releases the
//! quota: empty rooms never count.
//!
//! Plain data, used by the hub under its rooms lock: no lock of its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The limits, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct QuotaConfig {
    /// None: no limit (`--no-rate-limits`).
    pub per_user: Option<usize>,
    /// None: no limit (`--no-rate-limits`).
    pub per_ip: Option<usize>,
}

/// Why a room could not be created; the text is the user's error line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("you have created too many rooms that still exist (max {0}); join an existing one")]
    User(usize),
    #[error("too many rooms created from {ip} (max {max}); join an existing one")]
    Address { ip: IpAddr, max: usize },
}

/// Live rooms by creator and by creator's address.
#[derive(Debug, Default)]
pub struct RoomQuota {
    creator: HashMap<Arc<str>, (u64, IpAddr)>,
    by_user: HashMap<u64, usize>,
    by_ip: HashMap<IpAddr, usize>,
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they are.
fn key(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl RoomQuota {
    /// May user `id` from `ip` create one more room?
    pub fn check(&self, cfg: QuotaConfig, id: u64, ip: IpAddr) -> Result<(), QuotaError> {
        if let Some(max) = cfg.per_user
            && self.by_user.get(&id).copied().unwrap_or(0) >= max
        {
            return Err(QuotaError::User(max));
        }
        if let Some(max) = cfg.per_ip
            && self.by_ip.get(&key(ip)).copied().unwrap_or(0) >= max
        {
            return Err(QuotaError::Address { ip: key(ip), max });
        }
        Ok(())
    }

    /// Room `name` was created by user `id` from `ip` (after [`Self::check`]).
    pub fn created(&mut self, name: Arc<str>, id: u64, ip: IpAddr) {
        let ip = key(ip);
        *self.by_user.entry(id).or_default() += 1;
        *self.by_ip.entry(ip).or_default() += 1;
        self.creator.insert(name, (id, ip));
    }

    /// Room `name` was deleted: its creator and address get the slot back.
    pub fn removed(&mut self, name: &str) {
        let Some((id, ip)) = self.creator.remove(name) else {
            return;
        };
        fn dec<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: K) {
            if let std::collections::hash_map::Entry::Occupied(mut e) = m.entry(k) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        dec(&mut self.by_user, id);
        dec(&mut self.by_ip, ip);
    }

    /// Rooms counted (for tests and logs).
    pub fn counted(&self) -> usize {
        self.creator.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: QuotaConfig = QuotaConfig {
        per_user: Some(2),
        per_ip: Some(3),
    };

    #[test]
    fn limits_per_user_and_per_address_and_release() {
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let mut q = RoomQuota::default();
        for (i, n) in ["r1", "r2"].iter().enumerate() {
            assert_eq!(q.check(CFG, 1, a), Ok(()), "{i}");
            q.created(Arc::from(*n), 1, a);
        }
        assert_eq!(q.check(CFG, 1, a), Err(QuotaError::User(2)));
        assert_eq!(q.check(CFG, 2, a), Ok(()));
        q.created(Arc::from("r3"), 2, a);
        assert_eq!(
            q.check(CFG, 3, a),
            Err(QuotaError::Address { ip: a, max: 3 })
        );
        assert_eq!(q.check(CFG, 3, b), Ok(()), "another address is free");
        // The v4-mapped form is the same address.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert!(q.check(CFG, 3, mapped).is_err());
        q.removed("r1");
        assert_eq!(q.check(CFG, 1, a), Ok(()), "a deleted room frees both");
        q.removed("r1");
        q.removed("nope");
        assert_eq!(q.counted(), 2);
        let off = QuotaConfig {
            per_user: None,
            per_ip: None,
        };
        q.created(Arc::from("r4"), 1, a);
        assert_eq!(q.check(off, 1, a), Ok(()));
    }
}
