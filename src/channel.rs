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
}

/// The secret settings of a channel, stored sealed and never shown.
#[derive(Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretSettings {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
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

    /// Fills fields not given in `self` from `previous` (a PATCH need not repeat secrets).
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

fn http_url(field: &str, value: &str) -> Result<(), String> {
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
    for (field, value) in [
        ("url", &public.url),
        ("webhook_url", &secret.webhook_url),
        ("api_base_url", &public.api_base_url),
    ] {
        if let Some(v) = value {
            http_url(field, v)?;
        }
    }
    for name in secret.headers.keys() {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("headers: {name:?} is not a valid header name"));
        }
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
}
