//! Times and dates as the screen and the chat log write them, in local
//! time (the UTC offset is an argument: no clock, no I/O, except
//! [`local_utc_offset`] which asks libc once). A leaf.

/// `HH:MM:SS` of a Unix ms timestamp shifted by the local UTC offset.
pub fn hms(ts_ms: u64, offset_secs: i64) -> String {
    let s = (ts_ms / 1000) as i64 + offset_secs;
    let d = s.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", d / 3600, (d / 60) % 60, d % 60)
}

/// The days since 1970-01-01 of a Unix ms time shifted by the local UTC
/// offset (the day a date line names).
pub fn day_of(ts_ms: u64, offset_secs: i64) -> i64 {
    ((ts_ms / 1000) as i64 + offset_secs).div_euclid(86_400)
}

/// `Sunday 6 December 2026` for a day number of [`day_of`].
pub fn date_text(day: i64) -> String {
    const WEEKDAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let (y, m, d) = civil(day);
    format!(
        "{} {d} {} {y}",
        WEEKDAYS[day.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize]
    )
}

/// `2026-12-06` for a day number of [`day_of`].
pub fn iso_date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Year, month (1-12) and day of a day number of [`day_of`] (the civil
/// calendar from days, Howard Hinnant's algorithm).
fn civil(day: i64) -> (i64, i64, i64) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The local time's offset from UTC, for timestamps (0 if unknown).
pub fn local_utc_offset() -> i64 {
    let now = sockchat_shared::now_ms() / 1000;
    let t = now as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed tm we own; no shared state.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff
        }
    }
}
