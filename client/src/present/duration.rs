//! Durations in words for people (`1.2 s`, `350 ms`, `42 µs`): the one
//! format of the socket panel, the event lines and the transfer bars. A leaf,
//! so every presenter can use it without importing another.

/// `1.2 s`, `350 ms`, `42 µs`.
pub fn fmt_duration(d: std::time::Duration) -> String {
    let us = d.as_micros();
    if us >= 10_000_000 {
        format!("{} s", d.as_secs())
    } else if us >= 1_000_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}
