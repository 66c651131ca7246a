//! Certificate fingerprints as people compare them: `SHA256:` and the
//! SHA-256 of the certificate's DER bytes in colon-separated upper-case hex,
//! the same digits `openssl x509 -noout -fingerprint -sha256` prints, so a
//! user can check the server's printout, the client's and openssl's by eye.
//!
//! Both binaries use this one format: the server prints it at start, the
//! client pins it in `known_servers` and accepts it in `--tls-fingerprint`.

use sha2::{Digest, Sha256};

/// A SHA-256 certificate fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate (its DER encoding).
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parse `SHA256:AB:CD:...` (the prefix optional, colons optional, any
    /// case), as printed by the server or by openssl (`sha256
    /// Fingerprint=AB:CD:...` minus the label).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t
            .strip_prefix("SHA256:")
            .or_else(|| t.strip_prefix("sha256:"))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not a SHA-256 fingerprint (expected SHA256: and 32 hex bytes, e.g. SHA256:AB:CD:...)"
            ));
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("{s:?}: bad hex digit"))?;
        }
        Ok(Self(out))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_openssl_form() {
        let fp = Fingerprint::of_der(b"not really a certificate");
        let s = fp.to_string();
        assert!(s.starts_with("SHA256:"), "{s}");
        assert_eq!(s.len(), 7 + 32 * 3 - 1);
        assert_eq!(Fingerprint::parse(&s), Ok(fp));
        // openssl's digits without the prefix, lower case, no colons.
        let bare: String = s[7..].replace(':', "").to_lowercase();
        assert_eq!(Fingerprint::parse(&bare), Ok(fp));
    }

    #[test]
    fn garbage_is_refused_with_the_expected_form() {
        let e = Fingerprint::parse("SHA256:zz").expect_err("too short");
        assert!(e.contains("expected SHA256:"), "{e}");
        assert!(Fingerprint::parse(&"G".repeat(64)).is_err());
    }

    /// Exactly 32 bytes: hex digits one byte short or one byte long are
    /// refused with the expected form (not cut, not a panic).
    #[test]
    fn only_32_bytes_of_hex_are_a_fingerprint() {
        for n in [0, 2, 62, 66] {
            let e = Fingerprint::parse(&"a".repeat(n)).expect_err("wrong length");
            assert!(e.contains("expected SHA256:"), "{n}: {e}");
        }
        assert!(Fingerprint::parse(&"a".repeat(64)).is_ok());
    }
}
