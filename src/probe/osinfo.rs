//! What enrollment reads once: os-release, uname, cpuinfo.

use std::collections::BTreeMap;

/// Parses os-release: `KEY=value` lines, values unquoted (single or double quotes, with
/// backslash escapes inside double quotes); comments and blank lines ignored.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let value = if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            let mut v = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        v.push(next);
                    }
                } else {
                    v.push(c);
                }
            }
            v
        } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            inner.to_owned()
        } else {
            raw.to_owned()
        };
        out.insert(key.to_owned(), value);
    }
    out
}

/// The fields of `uname -a` that have a fixed place: kernel name, node name, release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    pub kernel_name: String,
    pub nodename: String,
    pub release: String,
}

/// Parses `uname -a`; the version field has spaces, so only the first three are taken.
pub fn parse_uname_a(text: &str) -> Option<Uname> {
    let mut it = text
        .lines()
        .find(|l| !l.trim().is_empty())?
        .split_whitespace();
    Some(Uname {
        kernel_name: it.next()?.to_owned(),
        nodename: it.next()?.to_owned(),
        release: it.next()?.to_owned(),
    })
}

/// CPU model and logical CPU count from /proc/cpuinfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuInfo {
    pub model: Option<String>,
    pub count: Option<u32>,
}

/// Parses cpuinfo of x86 (`model name`), ARM (`Processor`, `model name`), old arm64 (one
/// shared block after the `processor` lines) and s390x (`# processors`, `processor N: …`).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut model = None;
    let mut fallback_model = None;
    let mut processors = 0u32;
    let mut declared = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        match key {
            "model name" | "cpu model" if model.is_none() && !value.is_empty() => {
                model = Some(value.to_owned())
            }
            "Processor" if fallback_model.is_none() && !value.is_empty() => {
                fallback_model = Some(value.to_owned())
            }
            "vendor_id" if fallback_model.is_none() && !value.is_empty() => {
                fallback_model = Some(value.to_owned())
            }
            "# processors" => declared = value.parse().ok(),
            "processor" if value.parse::<u32>().is_ok() => processors += 1,
            _ if key.starts_with("processor ") && key[10..].trim().parse::<u32>().is_ok() => {
                processors += 1
            }
            _ => {}
        }
    }
    CpuInfo {
        model: model.or(fallback_model),
        count: declared.or((processors > 0).then_some(processors)),
    }
}
