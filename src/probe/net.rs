//! `/proc/net/dev`: byte and error counters per interface.
//!
//! The name ends at the line's last colon (names may contain colons, as aliases such as
//! `ibr10:30` do) and a large counter can follow the colon without a space.

/// Counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// Parses /proc/net/dev into (interface, counters), in file order.
pub fn parse_net_dev(text: &str) -> Vec<(String, NetCounters)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.rsplit_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let values: Option<Vec<u64>> = rest.split_whitespace().map(|v| v.parse().ok()).collect();
        let Some(v) = values.filter(|v| v.len() >= 16) else {
            continue;
        };
        out.push((
            name.to_owned(),
            NetCounters {
                rx_bytes: v[0],
                rx_errors: v[2],
                tx_bytes: v[8],
                tx_errors: v[10],
            },
        ));
    }
    out
}
