//! The field primitives every payload is made of, in one leaf module:
//! big-endian integers, `u16`-length strings, bools, and the one
//! [`DecodeError`]. The chat messages (`codec.rs`) and the file-transfer
//! messages (`transfer.rs`) are both written with them, so neither imports
//! the other's encoding.

use bytes::{BufMut, BytesMut};
use thiserror::Error;

/// Why bytes could not be decoded. Every variant is a protocol error.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("empty frame")]
    EmptyFrame,
    #[error("unknown message tag 0x{0:02x}")]
    UnknownTag(u8),
    #[error("truncated message: {0}")]
    Truncated(&'static str),
    #[error("invalid UTF-8 in {0}")]
    BadUtf8(&'static str),
    #[error("{0} trailing bytes after message")]
    Trailing(usize),
    #[error("invalid value for {0}")]
    BadValue(&'static str),
    #[error("bad preamble: not a sockchat peer")]
    BadMagic,
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
}

/// Writes fields at the end of a buffer.
pub(crate) struct W<'a>(pub(crate) &'a mut BytesMut);

impl W<'_> {
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.0.put_slice(b);
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.put_u16(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.put_u32(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.put_u64(v);
    }
    /// Strings longer than u16::MAX bytes are cut at a char boundary; the
    /// server never produces one (limits are far lower).
    pub(crate) fn str(&mut self, s: &str) {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.put_u16(end as u16);
        self.0.put_slice(&s.as_bytes()[..end]);
    }
}

/// Reads fields from the front of a payload; each read names what it reads
/// so a short payload says which field was missing.
pub(crate) struct R<'a>(pub(crate) &'a [u8]);

impl<'a> R<'a> {
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or(DecodeError::Truncated(what))?;
        self.0 = rest;
        Ok(b)
    }
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    pub(crate) fn str_ref(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::BadUtf8(what))
    }
    pub(crate) fn str(&mut self, what: &'static str) -> Result<String, DecodeError> {
        self.str_ref(what).map(str::to_owned)
    }
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string longer than a `u16` length can say is cut to at most
    /// 65,535 bytes, at the last char boundary before that, so what is
    /// written is still one valid UTF-8 string with its true length.
    #[test]
    fn a_string_over_u16_is_cut_at_a_char_boundary() {
        // 32,768 two-byte chars: byte 65,535 is inside the last one.
        let long = "é".repeat(32_768);
        let mut buf = BytesMut::new();
        W(&mut buf).str(&long);
        let mut r = R(&buf);
        let got = r.str("text").expect("one valid string");
        assert_eq!(got.len(), 65_534);
        assert_eq!(got, "é".repeat(32_767));
        assert!(r.0.is_empty(), "nothing after the cut string");
        // At the limit exactly, nothing is cut.
        let ascii = "a".repeat(65_535);
        let mut buf = BytesMut::new();
        W(&mut buf).str(&ascii);
        assert_eq!(R(&buf).str("text").expect("valid"), ascii);
    }
}
