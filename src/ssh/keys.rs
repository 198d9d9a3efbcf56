//! Private keys and host-key fingerprints, with russh's key handling (`russh::keys`).

use russh::keys::{self, HashAlg, PrivateKey};

/// What a private key given at registration turned out to be.
#[derive(Debug)]
pub struct KeyInfo {
    /// The SSH algorithm name, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The public half in OpenSSH `authorized_keys` form.
    pub public_key: String,
    /// Whether the key text is encrypted (and so needs its passphrase to be stored too).
    pub encrypted: bool,
}

/// Why a private key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the private key is encrypted: give its passphrase")]
    PassphraseRequired,
    #[error("wrong passphrase for the private key")]
    WrongPassphrase,
    #[error("not an OpenSSH or PEM private key ({0})")]
    Unreadable(String),
}

/// Decodes an OpenSSH or PEM private key, decrypting it with `passphrase` when it is encrypted.
pub fn decode_private_key(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, KeyError> {
    match keys::decode_secret_key(text, None) {
        Ok(key) => Ok(key),
        Err(keys::Error::KeyIsEncrypted) => match passphrase {
            None => Err(KeyError::PassphraseRequired),
            Some(p) => {
                keys::decode_secret_key(text, Some(p)).map_err(|_| KeyError::WrongPassphrase)
            }
        },
        // Legacy PEM encryption is only detected when a password is tried.
        Err(_) if passphrase.is_some() && text.contains("ENCRYPTED") => {
            keys::decode_secret_key(text, passphrase).map_err(|_| KeyError::WrongPassphrase)
        }
        Err(err) => Err(KeyError::Unreadable(err.to_string())),
    }
}

/// Checks a private key and describes it.
pub fn inspect_private_key(text: &str, passphrase: Option<&str>) -> Result<KeyInfo, KeyError> {
    let encrypted = matches!(
        keys::decode_secret_key(text, None),
        Err(keys::Error::KeyIsEncrypted)
    ) || (text.contains("ENCRYPTED")
        && keys::decode_secret_key(text, None).is_err());
    let key = decode_private_key(text, passphrase)?;
    let public = key.public_key();
    let public_key = public
        .to_openssh()
        .map_err(|e| KeyError::Unreadable(format!("public half: {e}")))?;
    Ok(KeyInfo {
        algorithm: public.algorithm().as_str().to_owned(),
        public_key,
        encrypted,
    })
}

/// The `SHA256:…` fingerprint of a public key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks the form of a `SHA256:<base64>` fingerprint given by an operator.
pub fn validate_fingerprint(text: &str) -> Result<(), String> {
    let Some(body) = text.strip_prefix("SHA256:") else {
        return Err("expected SHA256:<base64>, as printed by ssh-keygen -l".into());
    };
    let ok_chars = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if body.len() != 43 || !ok_chars {
        return Err("expected 43 base64 characters after SHA256: (unpadded SHA-256)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, ssh_key::LineEnding};

    fn ed25519() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
    }

    #[test]
    fn plain_and_encrypted_keys() {
        let key = ed25519();
        let plain = key.to_openssh(LineEnding::LF).unwrap();
        let info = inspect_private_key(&plain, None).unwrap();
        assert_eq!(info.algorithm, "ssh-ed25519");
        assert!(!info.encrypted);
        assert!(info.public_key.starts_with("ssh-ed25519 "));

        let enc = key.encrypt(&mut rand::rng(), "s3cret").unwrap();
        let enc = enc.to_openssh(LineEnding::LF).unwrap();
        assert_eq!(
            inspect_private_key(&enc, None).unwrap_err(),
            KeyError::PassphraseRequired
        );
        assert_eq!(
            inspect_private_key(&enc, Some("wrong")).unwrap_err(),
            KeyError::WrongPassphrase
        );
        let info = inspect_private_key(&enc, Some("s3cret")).unwrap();
        assert!(info.encrypted);
    }

    #[test]
    fn garbage_is_unreadable() {
        assert!(matches!(
            inspect_private_key("hello", None),
            Err(KeyError::Unreadable(_))
        ));
    }

    #[test]
    fn fingerprint_form() {
        let fp = fingerprint(ed25519().public_key());
        validate_fingerprint(&fp).unwrap();
        assert!(validate_fingerprint("MD5:aa:bb").is_err());
        assert!(validate_fingerprint("SHA256:short").is_err());
    }
}
