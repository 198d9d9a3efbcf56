//! Secrets at rest: an AEAD (XChaCha20-Poly1305) under one master key.
//!
//! Each sealed value is `version (1) || nonce (24) || ciphertext+tag`, and the purpose of the
//! value (for example `host_credential.password`) is bound in as associated data, so a ciphertext
//! copied into another column does not decrypt. The master key comes from
//! `HOSTWATCH_MASTER_KEY`, or from `<data-dir>/master.key`, created with mode 0600 on first start.

use std::{fs, io::Write, path::Path};

use base64::Engine;
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Seals and opens secrets. Its `Debug` output never shows the key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    /// A box for a raw 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Loads the master key from the configured value, or from (or into) `<data_dir>/master.key`.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self> {
        if let Some(text) = configured {
            let key = parse_key(text).map_err(|reason| {
                Error::Secret(format!("HOSTWATCH_MASTER_KEY is not usable: {reason}"))
            })?;
            return Ok(Self::new(&key));
        }
        let path = data_dir.join("master.key");
        match fs::read_to_string(&path) {
            Ok(text) => {
                let key = parse_key(text.trim()).map_err(|reason| {
                    Error::Secret(format!("{} is not usable: {reason}", path.display()))
                })?;
                Ok(Self::new(&key))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::fill(key.as_mut_slice());
                write_private_file(&path, format!("{}\n", hex::encode(key.as_ref())).as_bytes())?;
                tracing::info!(path = %path.display(), "created a new master key");
                Ok(Self::new(&key))
            }
            Err(err) => Err(Error::io(format!("reading {}", path.display()), err)),
        }
    }

    /// Encrypts `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| Error::Secret("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what [`SecretBox::seal`] made for the same `purpose`.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(Error::Secret(format!("{purpose}: not a sealed value")));
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: purpose.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::Secret(format!(
                    "{purpose}: cannot decrypt (was the master key changed since it was stored?)"
                ))
            })
    }

    /// Encrypts a string.
    pub fn seal_str(&self, purpose: &str, plaintext: &str) -> Result<Vec<u8>> {
        self.seal(purpose, plaintext.as_bytes())
    }

    /// Decrypts a string sealed with [`SecretBox::seal_str`].
    pub fn open_str(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<String>> {
        let bytes = self.open(purpose, sealed)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| Error::Secret(format!("{purpose}: decrypted value is not UTF-8")))
    }
}

/// Reads a 32-byte key written as 64 hex characters or as base64.
fn parse_key(text: &str) -> std::result::Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "expected 64 hex characters or base64 of 32 bytes".to_string())?
    };
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("expected 32 bytes, got {}", b.len()))
}

/// Installs aws-lc-rs as the process's rustls crypto provider. Two providers are compiled in
/// (sqlx brings ring), and rustls refuses to pick one itself; call this before any TLS.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Writes a file readable by its owner only (0600), refusing to overwrite an existing one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Makes an existing file readable and writable by its owner only (0600); a missing one is
/// left alone.
pub fn restrict_to_owner(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("restricting {}", path.display()), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_purpose_binding() {
        let sb = SecretBox::new(&[7u8; 32]);
        let sealed = sb.seal_str("host_credential.password", "hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            sb.open_str("host_credential.password", &sealed)
                .unwrap()
                .as_str(),
            "hunter2"
        );
        assert!(sb.open_str("channel.secrets", &sealed).is_err());
        let other = SecretBox::new(&[8u8; 32]);
        assert!(other.open_str("host_credential.password", &sealed).is_err());
    }

    #[test]
    fn keys_in_hex_or_base64() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert_eq!(parse_key(&b64).unwrap(), [3; 32]);
        assert!(parse_key("short").is_err());
        assert!(parse_key(&"ab".repeat(16)).is_err());
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(
            format!("{:?}", SecretBox::new(&[1; 32])),
            "SecretBox(<redacted>)"
        );
    }
}
