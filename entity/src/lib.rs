//! SeaORM entities for hostwatch: one module per table created by the `migration` crate.
//!
//! Times are Unix milliseconds (`i64`). Secret columns (`*_enc`) hold AEAD ciphertext only; the
//! service decrypts them where a connection or a channel needs them and nowhere else.
//!
//! `types` holds the closed sets of values (statuses, levels, kinds) the columns store as text.

pub mod alert_state;
pub mod api_token;
pub mod channel;
pub mod cluster_lease;
pub mod cluster_node;
pub mod config_change;
pub mod delivery;
pub mod enrollment_run;
pub mod host;
pub mod host_credential;
pub mod host_key;
pub mod host_label;
pub mod latest_snapshot;
pub mod maintenance_window;
pub mod notification;
pub mod poll;
pub mod series;
pub mod series_layout;
pub mod service_secret;
pub mod session;
pub mod silence;
pub mod threshold;
pub mod threshold_rule;
pub mod types;
pub mod url_check;
pub mod url_check_result;
pub mod user;
