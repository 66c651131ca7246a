//! One pcap file per scenario (`--pcap DIR`), written with `pcap-file`:
//! link type RAW (the packets start at the IP header, as captured), the
//! kernel's timestamps, truncated packets with their original length, so
//! Wireshark and tcpdump -r open them as they are.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::capture::{RawPacket, SNAPLEN};

/// Write `packets` to `DIR/SCENARIO.pcap`; the path written.
pub fn write(dir: &Path, scenario: &str, packets: &[RawPacket]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(format!("{scenario}.pcap"));
    let file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN,
        datalink: DataLink::RAW,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::native(),
    };
    let mut w = PcapWriter::with_header(std::io::BufWriter::new(file), header)
        .with_context(|| format!("write {}", path.display()))?;
    for p in packets {
        w.write_packet(&PcapPacket::new(p.ts, p.orig_len, &p.data))
            .with_context(|| format!("write {}", path.display()))?;
    }
    std::io::Write::flush(&mut w.into_writer())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}
