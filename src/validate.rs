//! Checks on operator-supplied strings. Addresses and usernames end up in SSH connection
//! parameters (never in a shell command), but a value with shell metacharacters or whitespace
//! is always a mistake, so it is refused at the door with a reason.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// A display name for a host, URL check or channel: 1–100 printable characters, none that
/// could hide or fake text.
pub fn name(field: &'static str, value: &str) -> Result<()> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > 100 {
        return Err(Error::invalid(
            field,
            "must be 1 to 100 characters and not blank",
        ));
    }
    // Controls would break a log or a page; bidi controls, zero-width characters and line
    // separators would make one name look like another wherever it is shown.
    if let Some(c) = value.chars().find(|c| crate::logs::is_hazardous(*c)) {
        return Err(Error::invalid(
            field,
            format!(
                "must not contain control, bidi-control, zero-width or line-separator \
                 characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    if value != value.trim() {
        return Err(Error::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    Ok(())
}

/// An IP address or a DNS name.
pub fn address(value: &str) -> Result<()> {
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let reason = "must be an IPv4/IPv6 address or a DNS name (letters, digits, '-' and '.')";
    if value.is_empty() || value.len() > 253 {
        return Err(Error::invalid("address", reason));
    }
    let labels_ok = value.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if labels_ok {
        Ok(())
    } else {
        Err(Error::invalid("address", reason))
    }
}

/// A port number, 1–65535.
pub fn port(value: u32) -> Result<u16> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::invalid("port", format!("must be 1 to 65535, got {value}")))
}

/// A POSIX-style login name: a letter or `_` first, then letters, digits, `.`, `_` or `-`.
pub fn username(value: &str) -> Result<()> {
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if first_ok && rest_ok && value.len() <= 32 {
        Ok(())
    } else {
        Err(Error::invalid(
            "username",
            "must be 1 to 32 characters: a letter or '_' first, then letters, digits, '.', \
             '_' or '-'",
        ))
    }
}

/// Labels: at most 32, each 1–64 characters of letters, digits and `._:=/-`, no duplicates.
pub fn labels(values: &[String]) -> Result<Vec<String>> {
    if values.len() > 32 {
        return Err(Error::invalid("labels", "at most 32 labels"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for label in values {
        let ok = !label.is_empty()
            && label.len() <= 64
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:=/-".contains(&b));
        if !ok {
            return Err(Error::invalid(
                "labels",
                format!("{label:?}: 1 to 64 characters of letters, digits and ._:=/-"),
            ));
        }
        if !out.contains(label) {
            out.push(label.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "web-1.example.com",
            "localhost",
            "host_1.lan.",
        ] {
            address(ok).unwrap();
        }
        for bad in [
            "",
            "a b",
            "host;rm -rf /",
            "$(id)",
            "-x.com",
            "a..b",
            "host`id`",
            "h|x",
        ] {
            assert!(address(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames() {
        for ok in ["root", "deploy", "_svc", "a.b-c_1"] {
            username(ok).unwrap();
        }
        for bad in ["", "1abc", "a b", "a;b", "-x", "x'y", &"a".repeat(33)] {
            assert!(username(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_that_could_spoof_are_refused() {
        name("name", "web-1 (prod) · rack 3 — 東京").unwrap();
        for bad in [
            "evil\u{202E}gnp.exe",
            "a\u{2066}b",
            "zero\u{200B}width",
            "line\u{2028}sep",
            "bom\u{FEFF}",
            "tab\there",
            "",
            " padded",
        ] {
            let err = name("name", bad).unwrap_err().to_string();
            assert!(err.starts_with("name: "), "{bad:?}: {err}");
        }
        assert!(
            name("name", "x\u{202E}y")
                .unwrap_err()
                .to_string()
                .contains("U+202E")
        );
    }

    #[test]
    fn ports() {
        assert_eq!(port(22).unwrap(), 22);
        assert!(port(0).is_err());
        assert!(port(65536).is_err());
    }

    #[test]
    fn label_rules() {
        assert_eq!(
            labels(&["a".into(), "a".into(), "env=prod".into()])
                .unwrap()
                .len(),
            2
        );
        assert!(labels(&["with space".into()]).is_err());
    }
}
