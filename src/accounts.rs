//! What accounts need besides storage: argon2id password hashes, generated passwords, and the
//! rules for names and passwords. Hashing is deliberately slow (argon2id's default cost, about
//! 19 MiB and a few tens of milliseconds); a login with an unknown name costs the same, so the
//! time taken does not say which names exist.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use base64::Engine;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 takes any length; a bound keeps a request cheap).
pub const MAX_PASSWORD: usize = 256;
/// Longest user name.
pub const MAX_USERNAME: usize = 64;

/// The PHC string (`$argon2id$v=19$…`) of `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the stored `hash` (a hash that cannot be read matches nothing).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the time a verification takes, for a login whose user does not exist.
pub fn verify_nobody(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default());
    let _ = verify_password(password, hash);
}

/// A new random password: 24 characters of URL-safe base64 (144 bits).
pub fn generate_password() -> Zeroizing<String> {
    let mut bytes = [0u8; 18];
    rand::fill(&mut bytes);
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A user name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_username(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_USERNAME {
        return Err(format!("must be 1 to {MAX_USERNAME} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err("must start with a lowercase letter or a digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{bad:?} is not allowed: use lowercase letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A password: 10 to 256 characters, not only spaces.
pub fn validate_password(password: &str) -> std::result::Result<(), String> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(format!(
            "must be {MIN_PASSWORD} to {MAX_PASSWORD} characters (got {n})"
        ));
    }
    if password.trim().is_empty() {
        return Err("must not be only spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("ops.team-2").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("Alice").is_err());
        assert!(validate_username("-x").is_err());
        assert!(validate_username("a b").unwrap_err().contains("' '"));
        assert!(validate_username(&"a".repeat(65)).is_err());
        assert!(validate_password("short").is_err());
        assert!(validate_password("          ").is_err());
        assert!(validate_password("long enough now").is_ok());
        let p = generate_password();
        assert_eq!(p.len(), 24);
        assert!(validate_password(&p).is_ok());
    }
}
