//! `/proc/diskstats`: bytes read and written per block device.
//!
//! Lines have 14, 18 or 20 fields depending on the kernel; sectors are always 512 bytes there.
//! Only whole devices are reported: partitions (a device whose name is another listed device's
//! name plus a number, like `sda1` or `nvme0n1p2`) and virtual devices without their own I/O
//! (loop, ram, zram, floppy, optical) are left out.

/// Cumulative I/O of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskCounters {
    pub read_bytes: u64,
    pub write_bytes: u64,
}

const SECTOR: u64 = 512;
const SKIPPED_PREFIXES: &[&str] = &["loop", "ram", "zram", "fd", "sr"];

fn is_partition_of(name: &str, disk: &str) -> bool {
    let Some(rest) = name.strip_prefix(disk) else {
        return false;
    };
    // A disk whose name ends in a digit numbers its partitions after a `p` (nvme0n1p1, md0p1).
    let digits = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        match rest.strip_prefix('p') {
            Some(d) => d,
            None => return false,
        }
    } else {
        rest
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Parses /proc/diskstats into (device, counters) for whole devices, in file order.
pub fn parse_diskstats(text: &str) -> Vec<(String, DiskCounters)> {
    let mut all = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let (Ok(read), Ok(written)) = (f[5].parse::<u64>(), f[9].parse::<u64>()) else {
            continue;
        };
        all.push((
            f[2].to_owned(),
            DiskCounters {
                read_bytes: read.saturating_mul(SECTOR),
                write_bytes: written.saturating_mul(SECTOR),
            },
        ));
    }
    let names: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
    all.into_iter()
        .filter(|(name, _)| !SKIPPED_PREFIXES.iter().any(|p| name.starts_with(p)))
        .filter(|(name, _)| {
            !names
                .iter()
                .any(|disk| disk != name && is_partition_of(name, disk))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::is_partition_of;

    #[test]
    fn partitions() {
        assert!(is_partition_of("sda1", "sda"));
        assert!(is_partition_of("nvme0n1p2", "nvme0n1"));
        assert!(is_partition_of("mmcblk0p1", "mmcblk0"));
        assert!(!is_partition_of("sdab", "sda"));
        assert!(!is_partition_of("dm-10", "dm-1"));
        assert!(!is_partition_of("nvme0n10", "nvme0n1"));
    }
}
