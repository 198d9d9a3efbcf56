//! What a notification channel is: its kind's settings, split into what may be shown
//! ([`PublicSettings`], stored as JSON) and what is secret ([`SecretSettings`], stored sealed
//! and never shown), and the rules they must follow. Shared by the API, the store and the
//! delivery worker.

use std::collections::BTreeMap;

use entity::types::ChannelKind;
use serde::{Deserialize, Serialize};

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (port 25 by default).
    None,
    /// SMTP upgraded with STARTTLS (port 587 by default).
    Starttls,
    /// SMTP inside TLS from the first byte (port 465 by default).
    Tls,
}

/// The non-secret settings of a channel, stored as JSON and shown by the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Let an email channel log in over plain SMTP (`tls: none`), password in the clear.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plaintext_auth: bool,
}

/// The secret settings of a channel, stored sealed and never shown.
#[derive(Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretSettings {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A webhook's whole URL when it holds credentials (userinfo, a query); the public `url`
    /// is then its redacted form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for SecretSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretSettings({:?})", self.names())
    }
}

impl SecretSettings {
    /// Names of the secret fields that are set (what the API may say about them).
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if !self.headers.is_empty() {
            names.push("headers".to_owned());
        }
        for (name, set) in [
            ("url", self.url.is_some()),
            ("webhook_url", self.webhook_url.is_some()),
            ("bot_token", self.bot_token.is_some()),
            ("password", self.password.is_some()),
        ] {
            if set {
                names.push(name.to_owned());
            }
        }
        names
    }

    /// Fills fields not given in `self` from `previous` (a PATCH need not repeat secrets). The
    /// sealed `url` is not one of them: it travels with the public `url` a PATCH always gives.
    pub fn or_keep(mut self, previous: SecretSettings) -> Self {
        if self.headers.is_empty() {
            self.headers = previous.headers;
        }
        self.webhook_url = self.webhook_url.or(previous.webhook_url);
        self.bot_token = self.bot_token.or(previous.bot_token);
        self.password = self.password.or(previous.password);
        self
    }
}

/// The first control character (a line break, a tab, an escape) in `value`, if any: URL
/// parsers drop some of them silently, and in a header they would split it.
fn control_char(field: &str, value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "{field}: contains the control character U+{:04X}",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Whether a URL carries credentials: a user or password, or a query (where tokens ride).
fn has_credentials(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some() || url.query().is_some()
}

/// A URL as it may be shown: its user, password and query values replaced by `***`.
pub fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        let _ = shown.set_username("***");
        let _ = shown.set_password(None);
    }
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        shown
            .query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "***")));
    }
    shown.set_fragment(None);
    shown.to_string()
}

/// A webhook URL as a client gave it, split into what may be shown and what is sealed: a URL
/// with credentials is shown redacted and kept whole among the secrets; one without is shown
/// as it is. (An unreadable URL is left for [`validate`] to report.)
pub fn split_webhook_url(text: String) -> (String, Option<String>) {
    match url::Url::parse(&text) {
        Ok(url) if has_credentials(&url) => (redacted(&url), Some(text)),
        _ => (text, None),
    }
}

fn http_url(field: &str, value: &str) -> Result<(), String> {
    control_char(field, value)?;
    let url = url::Url::parse(value).map_err(|e| format!("{field}: not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{field}: must be an http(s) URL with a host"));
    }
    Ok(())
}

fn plain_email(field: &str, value: &str) -> Result<(), String> {
    let ok = value.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && domain.contains('.')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: {value:?} is not an email address"))
    }
}

/// Checks that the settings are complete for `kind` and hold nothing that belongs to another.
pub fn validate(
    kind: ChannelKind,
    public: &PublicSettings,
    secret: &SecretSettings,
) -> Result<(), String> {
    let given: Vec<&str> = [
        ("url", public.url.is_some()),
        ("chat_id", public.chat_id.is_some()),
        ("api_base_url", public.api_base_url.is_some()),
        ("smtp_host", public.smtp_host.is_some()),
        ("smtp_port", public.smtp_port.is_some()),
        ("tls", public.tls.is_some()),
        ("username", public.username.is_some()),
        ("from", public.from.is_some()),
        ("to", !public.to.is_empty()),
        ("headers", !secret.headers.is_empty()),
        ("webhook_url", secret.webhook_url.is_some()),
        ("bot_token", secret.bot_token.is_some()),
        ("password", secret.password.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    let (allowed, required): (&[&str], &[&str]) = match kind {
        ChannelKind::Webhook => (&["url", "headers"], &["url"]),
        ChannelKind::Slack => (&["webhook_url"], &["webhook_url"]),
        ChannelKind::Telegram => (
            &["bot_token", "chat_id", "api_base_url"],
            &["bot_token", "chat_id"],
        ),
        ChannelKind::Email => (
            &[
                "smtp_host",
                "smtp_port",
                "tls",
                "username",
                "password",
                "from",
                "to",
            ],
            &["smtp_host", "from", "to"],
        ),
    };
    if let Some(extra) = given.iter().find(|name| !allowed.contains(name)) {
        return Err(format!(
            "{extra} is not a setting of a {kind} channel (allowed: {})",
            allowed.join(", ")
        ));
    }
    if let Some(missing) = required.iter().find(|name| !given.contains(name)) {
        return Err(format!("a {kind} channel needs {missing}"));
    }
    if secret.url.is_some() && kind != ChannelKind::Webhook {
        return Err(format!("url is not a setting of a {kind} channel"));
    }
    for (field, value) in [
        ("url", &public.url),
        ("url", &secret.url),
        ("webhook_url", &secret.webhook_url),
        ("api_base_url", &public.api_base_url),
    ] {
        if let Some(v) = value {
            http_url(field, v)?;
        }
    }
    if let Some(base) = &public.api_base_url
        && url::Url::parse(base).is_ok_and(|u| has_credentials(&u))
    {
        return Err(
            "api_base_url: must not hold credentials or a query; the bot token is a setting \
             of its own"
                .into(),
        );
    }
    for (name, value) in &secret.headers {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("headers: {name:?} is not a valid header name"));
        }
        control_char(&format!("headers.{name}"), value)?;
    }
    if public.allow_plaintext_auth && kind != ChannelKind::Email {
        return Err(format!(
            "allow_plaintext_auth is not a setting of a {kind} channel"
        ));
    }
    let logs_in = public.username.is_some() || secret.password.is_some();
    if public.tls == Some(SmtpTls::None) && logs_in && !public.allow_plaintext_auth {
        return Err(
            "tls: none would send the SMTP login in the clear; use starttls or tls, or set \
             allow_plaintext_auth: true if the network is trusted"
                .into(),
        );
    }
    if let Some(host) = &public.smtp_host {
        crate::validate::address(host).map_err(|e| format!("smtp_host: {e}"))?;
    }
    if public.smtp_port == Some(0) {
        return Err("smtp_port: must be 1 to 65535".into());
    }
    if let Some(from) = &public.from {
        plain_email("from", from)?;
    }
    for to in &public.to {
        plain_email("to", to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_kind_rules() {
        let webhook = PublicSettings {
            url: Some("https://hooks.example/x".into()),
            ..Default::default()
        };
        validate(ChannelKind::Webhook, &webhook, &SecretSettings::default()).unwrap();
        assert!(
            validate(ChannelKind::Slack, &webhook, &SecretSettings::default())
                .unwrap_err()
                .contains("not a setting")
        );
        assert!(
            validate(
                ChannelKind::Telegram,
                &PublicSettings::default(),
                &SecretSettings::default()
            )
            .unwrap_err()
            .contains("needs")
        );
        let email = PublicSettings {
            smtp_host: Some("mail.example.com".into()),
            from: Some("hw@example.com".into()),
            to: vec!["ops@example.com".into()],
            tls: Some(SmtpTls::Starttls),
            ..Default::default()
        };
        validate(ChannelKind::Email, &email, &SecretSettings::default()).unwrap();
        let bad = PublicSettings {
            to: vec!["nobody".into()],
            ..email
        };
        assert!(validate(ChannelKind::Email, &bad, &SecretSettings::default()).is_err());
    }

    #[test]
    fn secrets_debug_shows_names_only() {
        let s = SecretSettings {
            bot_token: Some("123:abc".into()),
            ..Default::default()
        };
        assert_eq!(format!("{s:?}"), "SecretSettings([\"bot_token\"])");
    }

    #[test]
    fn webhook_credentials_are_sealed_and_shown_redacted() {
        let (shown, sealed) =
            split_webhook_url("http://user:PW@hooks.example/hook?token=abc&x=1#frag".into());
        assert_eq!(shown, "http://***@hooks.example/hook?token=***&x=***");
        assert_eq!(
            sealed.as_deref(),
            Some("http://user:PW@hooks.example/hook?token=abc&x=1#frag")
        );
        let (shown, sealed) = split_webhook_url("https://hooks.example/plain".into());
        assert_eq!(
            (shown.as_str(), sealed),
            ("https://hooks.example/plain", None)
        );
    }

    #[test]
    fn control_characters_and_plaintext_logins_are_refused() {
        let webhook = |url: &str| PublicSettings {
            url: Some(url.into()),
            ..Default::default()
        };
        let err = validate(
            ChannelKind::Webhook,
            &webhook("https://hooks.example/a\nb"),
            &SecretSettings::default(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("url: contains the control character U+000A"),
            "{err}"
        );
        let bad_header = SecretSettings {
            headers: BTreeMap::from([("X-Key".into(), "a\r\nX-Injected: 1".into())]),
            ..Default::default()
        };
        let err = validate(
            ChannelKind::Webhook,
            &webhook("https://h.example/"),
            &bad_header,
        )
        .unwrap_err();
        assert!(err.starts_with("headers.X-Key: contains"), "{err}");
        let plain = PublicSettings {
            smtp_host: Some("mail.example.com".into()),
            from: Some("hw@example.com".into()),
            to: vec!["ops@example.com".into()],
            tls: Some(SmtpTls::None),
            username: Some("hw".into()),
            ..Default::default()
        };
        let password = SecretSettings {
            password: Some("pw".into()),
            ..Default::default()
        };
        let err = validate(ChannelKind::Email, &plain, &password).unwrap_err();
        assert!(err.contains("allow_plaintext_auth"), "{err}");
        let allowed = PublicSettings {
            allow_plaintext_auth: true,
            ..plain.clone()
        };
        validate(ChannelKind::Email, &allowed, &password).unwrap();
        // Without a login, plain SMTP is fine.
        let anonymous = PublicSettings {
            username: None,
            ..plain
        };
        validate(ChannelKind::Email, &anonymous, &SecretSettings::default()).unwrap();
        let telegram = PublicSettings {
            chat_id: Some("1".into()),
            api_base_url: Some("https://u:p@tg.example".into()),
            ..Default::default()
        };
        let token = SecretSettings {
            bot_token: Some("1:a".into()),
            ..Default::default()
        };
        assert!(
            validate(ChannelKind::Telegram, &telegram, &token)
                .unwrap_err()
                .contains("credentials")
        );
    }
}
