//! The packed forms a host's metric values are stored in: a poll's values in its `polls` row
//! (`data`), and a rollup bucket's count, average, minimum and maximum per series in a
//! `rollups_*` row.
//!
//! Neither names its series. A host reports the same (metric, label) keys poll after poll, so
//! the keys are stored once in a `series_layouts` row and each packed value list is read against
//! the layout its row names: a poll costs its numbers, not its names (about 1,000 bytes of JSON
//! a poll became about 100).
//!
//! Values are kept as `f32`, seven significant digits: a chart or a threshold needs no more,
//! and it halves what `f64` would take. Zero — an idle swap, a quiet disk, no steal — and
//! absent values take no bytes beyond their two-bit tag.
//!
//! Shared by the service and the migration that converted the older JSON form.

use serde::{Deserialize, Serialize};

/// One series of a host: a metric and its label (mount, interface, device, GPU; empty for
/// host-wide metrics).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub name: String,
    pub label: String,
}

impl SeriesKey {
    pub fn new(name: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
        }
    }
}

/// A layout's keys as its `series_layouts.keys` column holds them: `[["name","label"],…]`.
pub fn keys_to_json(keys: &[SeriesKey]) -> String {
    let pairs: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k.name.as_str(), k.label.as_str()))
        .collect();
    serde_json::to_string(&pairs).expect("strings serialise")
}

/// The keys of a `series_layouts.keys` column; `None` when it cannot be read.
pub fn keys_from_json(text: &str) -> Option<Vec<SeriesKey>> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text).ok()?;
    Some(
        pairs
            .into_iter()
            .map(|(name, label)| SeriesKey { name, label })
            .collect(),
    )
}

const ABSENT: u8 = 0;
const ZERO: u8 = 1;
const F32: u8 = 2;

/// Packs one poll's values, in its layout's key order (`None`: the key had no value this poll).
///
/// Two bits a key (absent, zero, `f32`), four keys a byte, then the `f32`s little-endian.
pub fn encode_values(values: &[Option<f64>]) -> Vec<u8> {
    let mut out = vec![0u8; values.len().div_ceil(4)];
    for (i, v) in values.iter().enumerate() {
        let tag = match v {
            None => ABSENT,
            Some(v) if *v == 0.0 => ZERO,
            Some(_) => F32,
        };
        out[i / 4] |= tag << ((i % 4) * 2);
    }
    for v in values.iter().flatten() {
        if *v != 0.0 {
            out.extend_from_slice(&(*v as f32).to_le_bytes());
        }
    }
    out
}

fn tag(data: &[u8], i: usize) -> u8 {
    data.get(i / 4).map_or(ABSENT, |b| (b >> ((i % 4) * 2)) & 3)
}

/// Every value of a packed poll of `len` keys. A blob that ends early reads as absent values
/// past its end, never as a panic.
pub fn decode_values(data: &[u8], len: usize) -> Vec<Option<f64>> {
    let mut at = len.div_ceil(4);
    (0..len)
        .map(|i| match tag(data, i) {
            ZERO => Some(0.0),
            F32 => {
                let v = read_f32(data, at);
                at += 4;
                v
            }
            _ => None,
        })
        .collect()
}

/// The value of key `index` of a packed poll of `len` keys.
pub fn decode_value(data: &[u8], len: usize, index: usize) -> Option<f64> {
    if index >= len {
        return None;
    }
    let before = (0..index).filter(|&i| tag(data, i) == F32).count();
    match tag(data, index) {
        ZERO => Some(0.0),
        F32 => read_f32(data, len.div_ceil(4) + before * 4),
        _ => None,
    }
}

fn read_f32(data: &[u8], at: usize) -> Option<f64> {
    let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(f64::from(f32::from_le_bytes(bytes)))
}

/// The values of one series over a bucket (or of one bucket's polls): how many, their sum,
/// least and greatest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub count: u32,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Aggregate {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Aggregate {
    /// One value.
    pub fn of(value: f64) -> Self {
        Self {
            count: 1,
            sum: value,
            min: value,
            max: value,
        }
    }

    pub fn add(&mut self, value: f64) {
        self.merge(&Self::of(value));
    }

    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The mean; `None` for no values.
    pub fn avg(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

/// Packs a bucket's aggregates, in its layout's key order. Per key a varint of `count << 2 |
/// form`, then by form: the average, minimum and maximum as `f32`s; one `f32` when every
/// value was the same; nothing when every value was zero. A count of zero (no value in the
/// bucket) is the varint alone.
pub fn encode_aggregates(aggregates: &[Aggregate]) -> Vec<u8> {
    let mut out = Vec::with_capacity(aggregates.len() * 13);
    for a in aggregates {
        let Some(avg) = a.avg() else {
            push_varint(&mut out, 0);
            continue;
        };
        let (min, max) = (a.min as f32, a.max as f32);
        let (form, floats): (u64, &[f32]) = if min == max && min == 0.0 {
            (2, &[])
        } else if min == max {
            (1, &[min])
        } else {
            (0, &[avg as f32, min, max])
        };
        push_varint(&mut out, (u64::from(a.count) << 2) | form);
        for f in floats {
            out.extend_from_slice(&f.to_le_bytes());
        }
    }
    out
}

/// Every aggregate of a packed bucket of `len` keys (empty ones for keys past a short blob).
pub fn decode_aggregates(data: &[u8], len: usize) -> Vec<Aggregate> {
    let mut at = 0;
    (0..len)
        .map(|_| read_aggregate(data, &mut at).unwrap_or_default())
        .collect()
}

/// The aggregate of key `index` of a packed bucket.
pub fn decode_aggregate(data: &[u8], index: usize) -> Aggregate {
    let mut at = 0;
    for _ in 0..index {
        if read_aggregate(data, &mut at).is_none() {
            return Aggregate::default();
        }
    }
    read_aggregate(data, &mut at).unwrap_or_default()
}

fn read_aggregate(data: &[u8], at: &mut usize) -> Option<Aggregate> {
    let head = read_varint(data, at)?;
    let count = u32::try_from(head >> 2).ok()?;
    if count == 0 {
        return Some(Aggregate::default());
    }
    let mut float = || {
        let v = read_f32(data, *at);
        *at += 4;
        v
    };
    let (avg, min, max) = match head & 3 {
        2 => (0.0, 0.0, 0.0),
        1 => {
            let v = float()?;
            (v, v, v)
        }
        _ => (float()?, float()?, float()?),
    };
    Some(Aggregate {
        count,
        sum: avg * f64::from(count),
        min,
        max,
    })
}

/// One minute of a chunk of minute buckets: its start, the layout its aggregates follow and
/// the packed aggregates (as [`encode_aggregates`] writes them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinuteEntry<'a> {
    pub start: i64,
    pub layout_id: i64,
    pub data: &'a [u8],
}

/// Packs the minute buckets of one chunk (a `rollups_1m_chunks` row starting at `chunk_start`,
/// naming `layout_id`): per minute a varint of its offset in minutes from the chunk's start, a
/// varint of its layout (0: the row's, else the id) and a varint length before its bytes.
///
/// A host's minutes are stored ten to a row once their 10-minute bucket is built: a day's chart
/// then reads 144 rows, not 1,440, and per-row costs are what a chart's read time is made of.
pub fn encode_minutes(chunk_start: i64, layout_id: i64, minutes: &[MinuteEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(minutes.iter().map(|m| m.data.len() + 3).sum());
    for m in minutes {
        debug_assert!(m.start >= chunk_start && (m.start - chunk_start) % 60_000 == 0);
        push_varint(&mut out, ((m.start - chunk_start) / 60_000) as u64);
        let layout = if m.layout_id == layout_id {
            0
        } else {
            m.layout_id as u64
        };
        push_varint(&mut out, layout);
        push_varint(&mut out, m.data.len() as u64);
        out.extend_from_slice(m.data);
    }
    out
}

/// The minutes of a chunk packed by [`encode_minutes`]; `None` when the bytes are not one.
pub fn decode_minutes(
    chunk_start: i64,
    layout_id: i64,
    data: &[u8],
) -> Option<Vec<MinuteEntry<'_>>> {
    let mut out: Vec<MinuteEntry> = Vec::with_capacity(10);
    let mut at = 0;
    while at < data.len() {
        // Ten minutes at most, each once and in order: anything else is not a chunk, and read
        // as one it could put minutes into another chunk's span.
        let offset = i64::try_from(read_varint(data, &mut at)?).ok()?;
        let after = out.last().map_or(-1, |m| (m.start - chunk_start) / 60_000);
        if offset >= 10 || offset <= after {
            return None;
        }
        let layout = match read_varint(data, &mut at)? {
            0 => layout_id,
            id => i64::try_from(id).ok()?,
        };
        let len = usize::try_from(read_varint(data, &mut at)?).ok()?;
        let bytes = data.get(at..at.checked_add(len)?)?;
        at += len;
        out.push(MinuteEntry {
            start: chunk_start.checked_add(offset.checked_mul(60_000)?)?,
            layout_id: layout,
            data: bytes,
        });
    }
    Some(out)
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_f32_precision() {
        let values = [
            Some(12.345678),
            None,
            Some(0.0),
            Some(-3.5),
            Some(1.5e12),
            Some(0.0),
            None,
        ];
        let data = encode_values(&values);
        // Two tag bytes and four f32s: zeros and absent values take no more.
        assert_eq!(data.len(), 2 + 4 * 3);
        let back = decode_values(&data, values.len());
        for (i, (v, b)) in values.iter().zip(&back).enumerate() {
            match (v, b) {
                (None, None) => {}
                (Some(v), Some(b)) => assert!((v - b).abs() <= v.abs() * 1e-7, "{v} vs {b}"),
                other => panic!("key {i}: {other:?}"),
            }
            assert_eq!(decode_value(&data, values.len(), i), *b);
        }
        assert_eq!(decode_value(&data, values.len(), 99), None);
        // A short blob reads as absent, not a panic.
        assert_eq!(decode_values(&data[..3], 7)[4], None);
        assert_eq!(decode_values(&[], 3), vec![None, None, None]);
    }

    #[test]
    fn aggregates_round_trip_in_their_three_forms() {
        let mut varying = Aggregate::default();
        for v in [1.0, 2.0, 6.0] {
            varying.add(v);
        }
        let mut constant = Aggregate::default();
        constant.add(7.25);
        constant.add(7.25);
        let mut zero = Aggregate::of(0.0);
        zero.add(0.0);
        let all = [varying, Aggregate::default(), constant, zero];
        let data = encode_aggregates(&all);
        assert_eq!(data.len(), (1 + 12) + 1 + (1 + 4) + 1);
        let back = decode_aggregates(&data, 4);
        assert_eq!(back[0].count, 3);
        assert_eq!(back[0].avg(), Some(3.0));
        assert_eq!((back[0].min, back[0].max), (1.0, 6.0));
        assert!(back[1].is_empty());
        assert_eq!(back[2], constant);
        assert_eq!(back[3].count, 2);
        assert_eq!(
            (back[3].min, back[3].max, back[3].avg()),
            (0.0, 0.0, Some(0.0))
        );
        for (i, a) in back.iter().enumerate() {
            assert_eq!(decode_aggregate(&data, i), *a);
        }
        assert!(decode_aggregate(&data, 9).is_empty());
        // A count past one varint byte.
        let mut many = Aggregate::default();
        for _ in 0..1000 {
            many.add(1.0);
        }
        assert_eq!(
            decode_aggregates(&encode_aggregates(&[many]), 1)[0].count,
            1000
        );
    }

    #[test]
    fn minute_chunks_round_trip_with_their_layouts() {
        let a = encode_aggregates(&[Aggregate::of(1.5), Aggregate::default()]);
        let b = encode_aggregates(&[Aggregate::of(0.0)]);
        let start = 1_800_000_000_000; // on a 10-minute boundary
        let minutes = [
            MinuteEntry {
                start,
                layout_id: 7,
                data: &a,
            },
            // A minute missing (the host was down), and one under another layout.
            MinuteEntry {
                start: start + 2 * 60_000,
                layout_id: 9,
                data: &b,
            },
            MinuteEntry {
                start: start + 9 * 60_000,
                layout_id: 7,
                data: &[],
            },
        ];
        let packed = encode_minutes(start, 7, &minutes);
        assert_eq!(decode_minutes(start, 7, &packed).unwrap(), minutes);
        assert_eq!(decode_minutes(start, 7, &[]).unwrap(), vec![]);
        // Minutes out of order, repeated or past the tenth are not a chunk.
        let swapped = encode_minutes(start, 7, &[minutes[1], minutes[0]]);
        assert_eq!(decode_minutes(start, 7, &swapped), None);
        let twice = encode_minutes(start, 7, &[minutes[0], minutes[0]]);
        assert_eq!(decode_minutes(start, 7, &twice), None);
        assert_eq!(decode_minutes(start, 7, &[10, 0, 0]), None);
        // A length past the end is not a chunk.
        assert_eq!(decode_minutes(start, 7, &[0, 0, 40, 1]), None);
        assert_eq!(decode_minutes(start, 7, &packed[..packed.len() - 1]), None);
    }

    #[test]
    fn layout_keys_round_trip_through_json() {
        let keys = vec![
            SeriesKey::new("cpu.usage_pct", ""),
            SeriesKey::new("disk.used_pct", "/home \"x\",y"),
        ];
        assert_eq!(keys_from_json(&keys_to_json(&keys)), Some(keys));
        assert_eq!(keys_from_json("{}"), None);
    }
}
