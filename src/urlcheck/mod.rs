//! URL checks: what a check expects (validated here so the API and the runner agree), the
//! runner (reqwest + rustls + x509-parser), and the service that schedules, stores and alerts.

pub mod cert;
pub mod runner;
pub mod service;

use url::Url;

/// Expected HTTP statuses: a union of inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    /// The default: any success or redirect.
    pub fn default_text() -> Vec<String> {
        vec!["200-399".into()]
    }

    /// Parses items like `200`, `200-299`, `418`.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        if items.is_empty() {
            return Err("give at least one status or range, e.g. [\"200-399\"]".into());
        }
        let code = |s: &str| -> Result<u16, String> {
            match s.trim().parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!("{s:?} is not an HTTP status (100 to 599)")),
            }
        };
        let mut ranges = Vec::with_capacity(items.len());
        for item in items {
            let range = match item.split_once('-') {
                Some((lo, hi)) => (code(lo)?, code(hi)?),
                None => {
                    let c = code(item)?;
                    (c, c)
                }
            };
            if range.0 > range.1 {
                return Err(format!("{item:?}: the range is backwards"));
            }
            ranges.push(range);
        }
        Ok(Self(ranges))
    }

    /// Whether `status` is expected.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }

    /// The stored form: `200-399,418`.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The API form of the stored text.
    pub fn stored_to_items(stored: &str) -> Vec<String> {
        stored
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Checks that `text` is an absolute http(s) URL with a host.
pub fn validate_url(text: &str) -> Result<Url, String> {
    // The parser drops tabs and line breaks silently: the URL stored would not be the one given.
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character U+{:04X}", c as u32));
    }
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not supported: use http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL would be stored in clear: remove them".into());
    }
    Ok(url)
}

/// Checks that `pem` holds at least one certificate and nothing unreadable.
pub fn validate_ca_pem(pem: &str) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = cert.map_err(|e| format!("not PEM: {e}"))?;
        cert::parse_der(&der)?;
        count += 1;
    }
    if count == 0 {
        Err("no CERTIFICATE block found".into())
    } else {
        Ok(())
    }
}

/// Allowed timeouts, in milliseconds.
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u32> = 100..=60_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets() {
        let set = StatusSet::parse(&["200-299".into(), "418".into()]).unwrap();
        assert!(set.contains(204) && set.contains(418) && !set.contains(301));
        assert_eq!(set.to_stored(), "200-299,418");
        assert!(StatusSet::parse(&["299-200".into()]).is_err());
        assert!(StatusSet::parse(&["abc".into()]).is_err());
        assert!(StatusSet::parse(&["700".into()]).is_err());
        assert!(StatusSet::parse(&[]).is_err());
    }

    #[test]
    fn urls() {
        validate_url("https://example.com/health").unwrap();
        assert!(validate_url("ftp://example.com").is_err());
        assert!(validate_url("not a url").is_err());
        assert!(validate_url("https://user:pw@example.com").is_err());
        assert!(
            validate_url("https://example.com/a\nb")
                .unwrap_err()
                .contains("U+000A")
        );
    }
}
