//! `df -P -k` and `df -P -i` (GNU coreutils and BusyBox), and `/proc/mounts` for file-system
//! types.
//!
//! Neither the device nor the mount point is safe to split on whitespace: both may contain
//! spaces, `%` and digits. A data line is read as: device, then the first run of four columns
//! (three numbers or `-`, then a percentage or `-`), then the mount point exactly as printed
//! from its leading `/`. BusyBox prints a raw newline inside a mount point, splitting an entry
//! over two lines; without `-P`, a long device name sits alone on its line with the numbers on
//! the next.

/// One df row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfRow {
    pub device: String,
    pub mount: String,
    /// Total, used and available, in the header's unit (bytes after [`parse_df`]), `None` for `-`.
    pub total: Option<u64>,
    pub used: Option<u64>,
    pub available: Option<u64>,
}

fn num(token: &str) -> Option<Option<u64>> {
    if token == "-" {
        Some(None)
    } else {
        token.parse::<u64>().ok().map(Some)
    }
}

fn is_pct(token: &str) -> bool {
    token == "-"
        || token
            .strip_suffix('%')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Finds the four value columns in `line`; the device is empty when the line starts with them.
fn split_row(line: &str) -> Option<DfRow> {
    // Token spans with their byte offsets, so the device and mount keep their exact spacing.
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c == ' ' || c == '\t', start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, line.len()));
    }
    let tok = |k: usize| &line[spans[k].0..spans[k].1];
    for k in 0..spans.len().saturating_sub(3) {
        let (Some(total), Some(used), Some(avail)) =
            (num(tok(k)), num(tok(k + 1)), num(tok(k + 2)))
        else {
            continue;
        };
        if !is_pct(tok(k + 3)) {
            continue;
        }
        let device = line[..spans[k].0].trim().to_owned();
        let after = spans[k + 3].1;
        // Mount points are absolute paths: what precedes the first `/` is column padding
        // (AIX and BSD print more than one space); trailing spaces belong to the name.
        let mount = line[after..].trim_start_matches([' ', '\t']).to_owned();
        return Some(DfRow {
            device,
            mount,
            total,
            used,
            available: avail,
        });
    }
    None
}

/// Parses df output. Sizes are converted to bytes from the header's block size
/// (`1024-blocks`, `512-blocks`, `1K-blocks`); inode counts (`Inodes` header) stay counts.
/// Rows repeated for the same mount point (BusyBox does not de-duplicate) are kept once.
pub fn parse_df(text: &str) -> Vec<DfRow> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let mut unit = 1u64;
    let mut rows: Vec<DfRow> = Vec::new();
    let mut pending_device: Option<String> = None;
    let mut last_was_row = false;
    while let Some(line) = lines.next() {
        if line.starts_with("Filesystem") {
            unit = if line.contains("512-blocks") {
                512
            } else if line.contains("1024-blocks") || line.contains("1K-blocks") {
                1024
            } else {
                1
            };
            last_was_row = false;
            continue;
        }
        if let Some(mut row) = split_row(line) {
            if let Some(device) = pending_device.take().filter(|_| row.device.is_empty()) {
                row.device = device;
            }
            let scale = |v: Option<u64>| v.map(|v| v.saturating_mul(unit));
            (row.total, row.used, row.available) =
                (scale(row.total), scale(row.used), scale(row.available));
            rows.push(row);
            last_was_row = true;
            continue;
        }
        // A line without values: a wrapped device name (its values follow on an indented line),
        // or the rest of a mount point split by a raw newline.
        let next_is_values = lines
            .peek()
            .and_then(|n| split_row(n))
            .is_some_and(|r| r.device.is_empty());
        if next_is_values {
            pending_device = Some(line.trim().to_owned());
        } else if let Some(last) = rows.last_mut().filter(|_| last_was_row) {
            last.mount.push('\n');
            last.mount.push_str(line);
        }
        last_was_row = false;
    }
    let mut seen = std::collections::HashSet::new();
    rows.retain(|r| seen.insert(r.mount.clone()));
    rows
}

/// Mount point to file-system type, from /proc/mounts (octal escapes such as `\040` decoded).
pub fn parse_mounts(text: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() >= 3 {
            out.entry(unescape_octal(f[1]))
                .or_insert_with(|| f[2].to_owned());
        }
    }
    out
}

/// Decodes the `\NNN` escapes the kernel writes in /proc/mounts.
pub fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = (bytes[i] == b'\\' && i + 3 < bytes.len())
            .then(|| &bytes[i + 1..i + 4])
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u16, |acc, b| acc * 8 + u16::from(b - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
