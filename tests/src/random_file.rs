//! Test files of pseudo-random bytes (xorshift: incompressible,
//! reproducible from a seed), for the file-transfer tests.

use std::path::Path;

/// Write `len` pseudo-random bytes from `seed` to `path`.
pub fn write_random(path: &Path, len: usize, seed: u64) {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    if let Err(e) = std::fs::write(path, v) {
        panic!("write {}: {e}", path.display());
    }
}
