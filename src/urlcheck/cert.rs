//! Reading a TLS certificate (DER) into the facts a URL check reports. Pure.

use std::net::IpAddr;

use x509_parser::{extensions::GeneralName, prelude::parse_x509_certificate};

/// What a URL check reports about the leaf certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    /// Hex, colon-separated, as browsers show it; alerts are kept per serial.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex: what a check pins.
    pub fingerprint: String,
}

impl CertInfo {
    /// Days until `not_after`, negative once expired.
    pub fn days_left(&self, now_ms: i64) -> f64 {
        (self.not_after_ms - now_ms) as f64 / 86_400_000.0
    }
}

/// Parses a DER certificate.
pub fn parse_der(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) =
        parse_x509_certificate(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let validity = cert.validity();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => sans.push(
                        IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")).to_string(),
                    ),
                    16 => sans.push(
                        IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")).to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        not_before_ms: validity.not_before.timestamp() * 1000,
        not_after_ms: validity.not_after.timestamp() * 1000,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        serial: cert.raw_serial_as_string(),
        fingerprint: fingerprint(der),
    })
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(der))
}

/// A pinned fingerprint as given (hex, any case, with or without `:` separators, optionally
/// prefixed `sha256:`) in its stored form, or why it is not one.
pub fn normalize_fingerprint(given: &str) -> Result<String, String> {
    let trimmed = given.trim();
    let bare = trimmed
        .strip_prefix("sha256:")
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed);
    let hex: String = bare.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be a SHA-256 fingerprint: 64 hex digits, colons allowed".into());
    }
    Ok(hex.to_ascii_lowercase())
}

/// Whether a certificate names itself as its issuer.
pub fn self_signed(der: &[u8]) -> bool {
    parse_x509_certificate(der).is_ok_and(|(_, c)| c.subject() == c.issuer())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_in_the_forms_people_paste() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        for given in [
            hex.clone(),
            colons.clone(),
            format!("sha256:{colons}"),
            format!("  {hex} "),
        ] {
            assert_eq!(
                normalize_fingerprint(&given).unwrap(),
                "ab".repeat(32),
                "{given}"
            );
        }
        for bad in ["", "abcd", &"zz".repeat(32), &"ab".repeat(20)] {
            assert!(normalize_fingerprint(bad).is_err(), "{bad}");
        }
    }
}
