//! The closed sets of values hostwatch stores as text: host status, alert level and state,
//! notification kind and event, poll outcome and error kind, and a few more.
//!
//! Each is defined once, here, because three layers need the same type: sea-orm stores it as a
//! text column (`DeriveActiveEnum`), the API shows it with its values listed in the spec
//! (`poem_openapi::Enum`), and the webhook payload serialises it (`serde`). The spellings are
//! the stored and wire form and never change.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Defines a text enum with its spelling per variant, the derives every layer needs, and
/// `as_str` / `Display`.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            EnumIter, DeriveActiveEnum, poem_openapi::Enum, Serialize, Deserialize,
        )]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[sea_orm(string_value = $text)]
                #[oai(rename = $text)]
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// The stored and wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            /// Reads the stored spelling.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where a host stands, as its last poll or enrollment left it.
    pub enum HostStatus {
        /// Registered, not enrolled yet.
        Pending = "pending",
        /// The last poll worked.
        Ok = "ok",
        /// The last poll could not reach the host or the probe failed.
        Unreachable = "unreachable",
        /// The host refused the login.
        AuthFailed = "auth_failed",
        /// The host presented another key than the pinned one; polls are refused until an
        /// operator re-trusts it.
        HostKeyMismatch = "host_key_mismatch",
        /// Not a Linux host with /proc; not polled.
        Unsupported = "unsupported",
        /// Provisioning the `hostwatch` user failed; polls go on with the bootstrap login
        /// until a retried enrollment completes it.
        ProvisionFailed = "provision_failed",
    }
}

impl HostStatus {
    /// Statuses that hold until an operator acts or a poll proves them wrong, and fire a
    /// notification of their own (`auth_failed`, `host_key_mismatch`).
    pub fn is_alerting(self) -> bool {
        matches!(self, Self::AuthFailed | Self::HostKeyMismatch)
    }

    /// Statuses a successful poll leaves in place: they are about the host's setup, not
    /// about reaching it (`provision_failed` holds while polls work with the bootstrap login).
    pub fn survives_polls(self) -> bool {
        matches!(self, Self::ProvisionFailed)
    }
}

text_enum! {
    /// Severity of a notification; an alert fires at `warning` or `critical`.
    pub enum Level {
        Info = "info",
        Warning = "warning",
        Critical = "critical",
    }
}

text_enum! {
    /// Where an alert's state machine is.
    pub enum AlertPhase {
        /// At rest.
        Ok = "ok",
        /// Over a level, fewer times in a row than it needs to fire.
        Pending = "pending",
        /// Firing at its level.
        Firing = "firing",
    }
}

text_enum! {
    /// What an alert (and every notification it writes) is about.
    pub enum AlertKind {
        /// A metric crossed a host threshold.
        Threshold = "threshold",
        /// Polls of the host failed several times in a row.
        HostUnreachable = "host_unreachable",
        /// The host refused the login.
        AuthFailed = "auth_failed",
        /// The host presented a different host key.
        HostKeyMismatch = "host_key_mismatch",
        /// A URL check failed (status outside the expected set, or no answer).
        UrlStatus = "url_status",
        /// A URL answered slower than its threshold.
        UrlLatency = "url_latency",
        /// A TLS certificate is close to its expiry.
        CertExpiry = "cert_expiry",
        /// Enrollment of a host failed.
        EnrollmentFailed = "enrollment_failed",
        /// Provisioning the `hostwatch` user on a host failed.
        ProvisionFailed = "provision_failed",
    }
}

impl AlertKind {
    /// The alert a host status stands for, when the status is an alert of its own.
    pub fn of_status(status: HostStatus) -> Option<Self> {
        match status {
            HostStatus::AuthFailed => Some(Self::AuthFailed),
            HostStatus::HostKeyMismatch => Some(Self::HostKeyMismatch),
            HostStatus::ProvisionFailed => Some(Self::ProvisionFailed),
            _ => None,
        }
    }

    /// The level a status alert fires at (and resolves with).
    pub fn status_level(self) -> Level {
        match self {
            Self::ProvisionFailed => Level::Warning,
            _ => Level::Critical,
        }
    }
}

text_enum! {
    /// Whether a notification says an alert is firing or over.
    pub enum NotificationState {
        Firing = "firing",
        Resolved = "resolved",
    }
}

text_enum! {
    /// The transition a notification records.
    pub enum Event {
        Fired = "fired",
        Escalated = "escalated",
        DeEscalated = "de-escalated",
        Reminder = "reminder",
        Resolved = "resolved",
    }
}

text_enum! {
    /// How a poll attempt ended.
    pub enum PollOutcome {
        Ok = "ok",
        /// The host could not be reached or the probe failed; `error_kind` says how.
        Error = "error",
        /// The host is in a state that refuses polls until an operator acts.
        Refused = "refused",
        /// The previous poll was still running; this tick was skipped.
        SkippedOverrun = "skipped_overrun",
    }
}

text_enum! {
    /// A short, stable class of failure of a poll (or enrollment, or SSH operation).
    pub enum PollErrorKind {
        /// The TCP connection could not be made or broke during the handshake.
        Connect = "connect",
        /// The deadline passed.
        Timeout = "timeout",
        HostKeyMismatch = "host_key_mismatch",
        AuthFailed = "auth_failed",
        /// The probe wrote more than the output cap.
        OutputTooLarge = "output_too_large",
        /// The SSH conversation went wrong.
        Protocol = "protocol",
        /// The host offers no algorithm hostwatch accepts (an `ssh-rsa`-only host key).
        Algorithms = "algorithms",
        /// Not re-dialled yet: waiting after repeated failures.
        Backoff = "backoff",
        /// The probe ran but exited with an error or a signal, or its output stopped before
        /// its end marker.
        ProbeFailed = "probe_failed",
        /// The host closed the channel without saying how the probe ended (no exit status).
        Dropped = "dropped",
        /// The host has not been enrolled and enrollment failed.
        EnrollmentFailed = "enrollment_failed",
        /// The host's status refuses polls.
        Refused = "refused",
        /// hostwatch itself failed (see its log).
        Internal = "internal",
        /// The previous poll was still running.
        Overrun = "overrun",
    }
}

text_enum! {
    /// A class of failure of a URL check.
    pub enum UrlErrorKind {
        Dns = "dns",
        Refused = "refused",
        Connect = "connect",
        Tls = "tls",
        Timeout = "timeout",
        Redirect = "redirect",
        Http = "http",
        /// An answer outside the expected statuses.
        Status = "status",
        /// The check's own settings could not be used (an unreadable `ca_pem`).
        Config = "config",
    }
}

text_enum! {
    /// Where one delivery of the outbox is.
    pub enum DeliveryStatus {
        Pending = "pending",
        Sent = "sent",
        /// Given up after the last attempt.
        Failed = "failed",
    }
}

text_enum! {
    /// A notification channel's kind.
    pub enum ChannelKind {
        Webhook = "webhook",
        Slack = "slack",
        Telegram = "telegram",
        Email = "email",
    }
}

text_enum! {
    /// How hostwatch logs in to a host.
    pub enum AuthMethod {
        PrivateKey = "private_key",
        Password = "password",
    }
}

text_enum! {
    /// Where a host's credentials came from.
    pub enum CredentialSource {
        /// Given at registration (or in a PATCH).
        Registered = "registered",
        /// hostwatch's own key for the `hostwatch` user it created.
        Provisioned = "provisioned",
    }
}

text_enum! {
    /// What an instance of the service does on a shared database.
    pub enum NodeRole {
        /// Holds the lock (SQLite) or the lease (PostgreSQL): polls, checks URLs, delivers.
        Leader = "leader",
        /// Serves the API and waits to take the lease over.
        Standby = "standby",
    }
}

text_enum! {
    /// What a configuration change touched, for the leader to follow.
    pub enum ChangeKind {
        /// A host was registered: schedule it, enroll and poll it.
        HostCreated = "host_created",
        /// A host was changed (or its thresholds): re-read it.
        Host = "host",
        /// A host's credentials or address changed: drop its connection and poll it now.
        HostRedial = "host_redial",
        /// A host was deleted.
        HostDeleted = "host_deleted",
        /// A URL check was created, changed or deleted.
        UrlCheck = "url_check",
        /// A fleet-wide threshold rule changed: every host's rules are read again.
        ThresholdRules = "threshold_rules",
        /// A maintenance window changed: the windows are read again.
        Maintenance = "maintenance",
    }
}

text_enum! {
    /// What a user (and a token, at most its user's) may do; each role may do everything the
    /// one before it may.
    pub enum Role {
        /// Reads everything.
        Viewer = "viewer",
        /// And changes hosts, checks, thresholds and channels, and acknowledges alerts.
        Operator = "operator",
        /// And manages users and tokens.
        Admin = "admin",
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    #[test]
    fn spellings_round_trip_through_every_layer() {
        for status in HostStatus::iter() {
            assert_eq!(HostStatus::parse(status.as_str()), Some(status));
            assert_eq!(status.to_value(), status.as_str());
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert_eq!(Event::DeEscalated.as_str(), "de-escalated");
        assert_eq!(
            Event::try_from_value(&"de-escalated".to_owned()).unwrap(),
            Event::DeEscalated
        );
        assert!(Level::try_from_value(&"loud".to_owned()).is_err());
        assert!(Level::Info < Level::Warning && Level::Warning < Level::Critical);
    }
}

text_enum! {
    /// What a silence matcher looks at.
    pub enum MatchField {
        /// The host's name (for a URL check, the host it is attached to).
        Host = "host",
        /// One of the host's labels (`env=prod`): matches when any label does.
        HostLabel = "host_label",
        /// The URL check's name.
        Check = "check",
        /// The alert's kind (`threshold`, `host_unreachable`, …).
        Kind = "kind",
        /// The alert's metric (`disk.used_pct`).
        Metric = "metric",
        /// The alert's label: mount, GPU index, certificate serial.
        Label = "label",
        /// The alert's level (`warning`, `critical`).
        Level = "level",
    }
}

text_enum! {
    /// How a matcher compares: equality or a regular expression over the whole value.
    pub enum MatchOp {
        Equal = "equal",
        NotEqual = "not_equal",
        Regex = "regex",
        NotRegex = "not_regex",
    }
}

text_enum! {
    /// How a maintenance window recurs.
    pub enum Recurrence {
        /// Once, from a local date and time.
        Once = "once",
        /// Every day at a local time.
        Daily = "daily",
        /// On the given weekdays at a local time.
        Weekly = "weekly",
    }
}

text_enum! {
    /// A day of the week.
    pub enum Weekday {
        Mon = "mon",
        Tue = "tue",
        Wed = "wed",
        Thu = "thu",
        Fri = "fri",
        Sat = "sat",
        Sun = "sun",
    }
}

text_enum! {
    /// Where a host's effective threshold comes from.
    pub enum ThresholdSource {
        /// Set on the host itself.
        Host = "host",
        /// A fleet-wide rule selected by the host's labels.
        Rule = "rule",
        /// The built-in default.
        Default = "default",
    }
}
