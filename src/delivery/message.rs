//! What a notification says on each channel. Pure: the worker supplies the notification and what
//! it is about (host or URL check); these functions build the texts and payloads.
//!
//! Slack: an incoming-webhook body with `text` (the fallback shown in notifications) and
//! `blocks` (header, section in mrkdwn, context). Telegram: a Bot API `sendMessage` body with
//! `parse_mode: HTML`. Email: a plain-text body.

use chrono::{DateTime, Utc};
use entity::{
    notification,
    types::{Event, Level, NotificationState},
};
use serde_json::{Value, json};

/// What the notification is about.
#[derive(Debug, Clone, PartialEq)]
pub enum About {
    Host {
        name: String,
        address: String,
        port: i32,
    },
    UrlCheck {
        name: String,
        url: String,
    },
    Nothing,
}

/// A notification ready to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub notification: notification::Model,
    pub about: About,
    /// A test message (`POST /channels/{id}/test`): its kind and event read `test`, and it is
    /// about no alert.
    pub test: bool,
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Message {
    /// The event as sent: the notification's, or `test`.
    fn event(&self) -> Option<&'static str> {
        if self.test {
            Some("test")
        } else {
            self.notification.event.map(Event::as_str)
        }
    }

    /// The subject line: `[CRITICAL] title` / `[RESOLVED] title`.
    pub fn subject(&self) -> String {
        let tag = if self.notification.state == NotificationState::Resolved {
            "RESOLVED".to_owned()
        } else {
            self.notification.level.as_str().to_uppercase()
        };
        format!("[{tag}] {}", self.notification.title)
    }

    /// The facts as (label, value) lines, in a fixed order.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let n = &self.notification;
        let mut out = Vec::new();
        match &self.about {
            About::Host {
                name,
                address,
                port,
            } => out.push(("Host", format!("{name} ({address}:{port})"))),
            About::UrlCheck { name, url } => out.push(("URL check", format!("{name} ({url})"))),
            About::Nothing => {}
        }
        if let Some(metric) = &n.metric {
            let label = n
                .label
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default();
            out.push(("Metric", format!("{metric}{label}")));
        }
        match (n.value, n.threshold) {
            (Some(v), Some(t)) => out.push(("Value", format!("{} (threshold {})", num(v), num(t)))),
            (Some(v), None) => out.push(("Value", num(v))),
            _ => {}
        }
        out.push(("Level", n.level.to_string()));
        let event = self.event().map(|e| format!(" ({e})")).unwrap_or_default();
        out.push(("State", format!("{}{event}", n.state)));
        out.push(("Time", time(n.created_at)));
        out
    }

    /// The plain-text body (email, webhook `text`).
    pub fn plain_text(&self) -> String {
        let mut text = format!("{}\n\n", self.notification.title);
        for (k, v) in self.facts() {
            text.push_str(&format!("{k}: {v}\n"));
        }
        text.push('\n');
        text.push_str(&self.notification.message);
        text.push_str("\n\n-- \nhostwatch\n");
        text
    }

    /// The generic webhook body: the notification's fields, its subject and a text rendering.
    pub fn webhook_payload(&self) -> Value {
        let n = &self.notification;
        let about = match &self.about {
            About::Host {
                name,
                address,
                port,
            } => json!({"type": "host", "name": name, "address": address, "port": port}),
            About::UrlCheck { name, url } => json!({"type": "url_check", "name": name, "url": url}),
            About::Nothing => Value::Null,
        };
        json!({
            "id": n.id,
            "alert_id": n.alert_id,
            "kind": if self.test { "test" } else { n.kind.as_str() },
            "host_id": n.host_id,
            "url_check_id": n.url_check_id,
            "metric": n.metric,
            "label": n.label,
            "level": n.level,
            "state": n.state,
            "event": self.event(),
            "value": n.value,
            "threshold": n.threshold,
            "title": n.title,
            "message": n.message,
            "created_at": time(n.created_at),
            "about": about,
            "text": self.plain_text(),
        })
    }

    /// A Slack incoming-webhook body.
    pub fn slack_payload(&self) -> Value {
        let icon = match (self.notification.state, self.notification.level) {
            (NotificationState::Resolved, _) => ":white_check_mark:",
            (_, Level::Critical) => ":red_circle:",
            (_, Level::Warning) => ":warning:",
            (_, Level::Info) => ":information_source:",
        };
        let facts: String = self
            .facts()
            .iter()
            .map(|(k, v)| format!("*{k}:* {}\n", slack_escape(v)))
            .collect();
        let section = truncate(
            &format!("{facts}\n{}", slack_escape(&self.notification.message)),
            3000,
        );
        let header = json!({
            "type": "plain_text",
            "text": truncate(&self.subject(), 150),
            "emoji": true,
        });
        let context = json!({
            "type": "mrkdwn",
            "text": format!("hostwatch · notification {}", self.notification.id),
        });
        json!({
            // The fallback is mrkdwn too: a host named `<!here>` must not ping the channel.
            "text": truncate(&format!("{icon} {}", slack_escape(&self.subject())), 3000),
            "blocks": [
                {"type": "header", "text": header},
                {"type": "section", "text": {"type": "mrkdwn", "text": section}},
                {"type": "context", "elements": [context]}
            ]
        })
    }

    /// A Telegram Bot API `sendMessage` body.
    pub fn telegram_payload(&self, chat_id: &str) -> Value {
        let mut text = format!("<b>{}</b>\n", html_escape(&self.subject()));
        for (k, v) in self.facts() {
            text.push_str(&format!("<b>{k}:</b> {}\n", html_escape(&v)));
        }
        text.push('\n');
        text.push_str(&html_escape(&self.notification.message));
        json!({
            "chat_id": chat_id,
            "text": truncate(&text, 4096),
            "parse_mode": "HTML",
            "disable_web_page_preview": true,
        })
    }
}

/// Slack mrkdwn needs `&`, `<` and `>` escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Telegram's HTML mode needs `&`, `<` and `>` escaped.
fn html_escape(s: &str) -> String {
    slack_escape(s)
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use entity::types::AlertKind;

    use super::*;

    fn sample() -> Message {
        Message {
            notification: notification::Model {
                id: 7,
                host_id: Some(1),
                url_check_id: None,
                kind: AlertKind::Threshold,
                metric: Some("disk.used_pct".into()),
                label: Some("/var".into()),
                level: Level::Critical,
                state: NotificationState::Firing,
                event: Some(Event::Fired),
                value: Some(96.5),
                threshold: Some(95.0),
                title: "web-1: disk.used_pct /var is critical (96.5 ≥ 95)".into(),
                message: "disk <full> & more".into(),
                created_at: 1_700_000_000_000,
                read_at: None,
                alert_id: Some(3),
                silence_id: None,
                maintenance_id: None,
            },
            about: About::Host {
                name: "web-1".into(),
                address: "10.0.0.5".into(),
                port: 22,
            },
            test: false,
        }
    }

    #[test]
    fn plain_text_has_every_fact() {
        let text = sample().plain_text();
        for needle in [
            "Host: web-1 (10.0.0.5:22)",
            "Metric: disk.used_pct [/var]",
            "Value: 96.50 (threshold 95)",
            "Level: critical",
            "State: firing (fired)",
            "Time: 2023-11-14T22:13:20Z",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        assert_eq!(
            sample().subject(),
            "[CRITICAL] web-1: disk.used_pct /var is critical (96.5 ≥ 95)"
        );
    }

    #[test]
    fn slack_and_telegram_escape_and_shape() {
        let slack = sample().slack_payload();
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .starts_with(":red_circle: [CRITICAL]")
        );
        assert_eq!(slack["blocks"][0]["type"], "header");
        assert_eq!(slack["blocks"][1]["text"]["type"], "mrkdwn");
        assert!(
            slack["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("disk &lt;full&gt; &amp; more")
        );
        let tg = sample().telegram_payload("-100123");
        assert_eq!(
            (tg["chat_id"].as_str(), tg["parse_mode"].as_str()),
            (Some("-100123"), Some("HTML"))
        );
        assert!(
            tg["text"]
                .as_str()
                .unwrap()
                .contains("<b>Level:</b> critical")
        );
        assert!(
            tg["text"]
                .as_str()
                .unwrap()
                .contains("disk &lt;full&gt; &amp; more")
        );
        assert_eq!(truncate(&"x".repeat(5000), 4096).chars().count(), 4096);
    }

    #[test]
    fn slack_fallback_text_is_escaped_too() {
        let mut msg = sample();
        msg.notification.title = "<!here> web-1 & friends".into();
        let slack = msg.slack_payload();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("&lt;!here&gt; web-1 &amp; friends"), "{text}");
        assert!(!text.contains("<!here>"), "{text}");
    }
}
