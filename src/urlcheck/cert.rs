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
    })
}
