//! The checked readers of a recorded object's fields (a leaf, so the
//! decoders of `format.rs` and `transfer.rs` share them): each says in
//! words which field is missing or wrong, none panics.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};

/// The longest time accepted (ten years, in µs): past it a `Duration`
/// would be nonsense.
pub const T_MAX_US: u64 = 10 * 365 * 24 * 3600 * 1_000_000;

/// A JSON object.
pub type Obj = Map<String, Value>;

pub fn field<'a>(o: &'a Obj, k: &str) -> Result<&'a Value, String> {
    o.get(k).ok_or_else(|| format!("no {k:?}"))
}

pub fn text(o: &Obj, k: &str) -> Result<String, String> {
    field(o, k)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{k:?} is not a string"))
}

pub fn num(o: &Obj, k: &str) -> Result<u64, String> {
    field(o, k)?
        .as_u64()
        .ok_or_else(|| format!("{k:?} is not a whole number >= 0"))
}

pub fn small<T: TryFrom<u64>>(o: &Obj, k: &str) -> Result<T, String> {
    T::try_from(num(o, k)?).map_err(|_| format!("{k:?} is out of range"))
}

pub fn flag(o: &Obj, k: &str) -> Result<bool, String> {
    field(o, k)?
        .as_bool()
        .ok_or_else(|| format!("{k:?} is not true or false"))
}

pub fn addr(o: &Obj, k: &str) -> Result<SocketAddr, String> {
    text(o, k)?
        .parse()
        .map_err(|_| format!("{k:?} is not an address"))
}

pub fn strings(o: &Obj, k: &str) -> Result<Vec<String>, String> {
    field(o, k)?
        .as_array()
        .ok_or_else(|| format!("{k:?} is not a list"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{k:?} holds a non-string"))
        })
        .collect()
}

pub fn ms(o: &Obj, k: &str) -> Result<Duration, String> {
    let n = num(o, k)?;
    if n > T_MAX_US / 1000 {
        return Err(format!("{k:?} is out of range"));
    }
    Ok(Duration::from_millis(n))
}
