//! One SSH connection to one host on russh: dial, host-key check, authentication, and running a
//! script on `sh -s` with its output capped.
//!
//! The remote command is the fixed string `exec sh -s`; the script travels on stdin. Nothing an
//! operator typed (names, labels, usernames) is ever part of a command line.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use entity::types::PollErrorKind;
use russh::{
    ChannelMsg, Disconnect,
    client::{self, Handle},
    keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey},
};
use zeroize::Zeroizing;

use super::{burst::BurstReader, keys::fingerprint};

/// The command every exec runs; scripts are written to its stdin. sshd hands it to the login
/// shell's `-c`, which with `exec` becomes `sh` instead of forking one more process per poll
/// (`exec` exists in every login shell: sh, bash, zsh, fish, csh).
pub const REMOTE_COMMAND: &str = "exec sh -s";

/// How to log in.
#[derive(Clone)]
pub enum Auth {
    Key(Arc<PrivateKey>),
    Password(Arc<Zeroizing<String>>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(k) => write!(f, "Key({})", k.algorithm().as_str()),
            Self::Password(_) => f.write_str("Password(<redacted>)"),
        }
    }
}

/// Which host keys to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Only the key with this fingerprint (pinned, or given at registration).
    Fingerprint(String),
    /// Any key (trust on first use: the caller pins what was presented).
    AnyKey,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub address: String,
    pub port: u16,
    pub username: String,
    pub auth: Auth,
    pub host_key: HostKeyPolicy,
}

/// Why an SSH operation failed, classified for the poll log and the host's status.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("timed out after {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("host key changed: expected {expected}, the host presented {presented_fingerprint}")]
    HostKeyMismatch {
        expected: String,
        presented: Box<PublicKey>,
        presented_fingerprint: String,
    },
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    #[error("output exceeded {0} bytes; the channel was closed")]
    OutputTooLarge(usize),
    #[error("ssh: {0}")]
    Protocol(String),
    /// Nothing the host offers is acceptable (an `ssh-rsa`-only host key, say).
    #[error(
        "no {what} algorithm in common: the host offers {offered}; hostwatch does not accept SHA-1 \
         host-key signatures (ssh-rsa) or other legacy algorithms"
    )]
    NoCommonAlgorithm { what: &'static str, offered: String },
}

impl SshError {
    /// A short, stable class of failure.
    pub fn kind(&self) -> PollErrorKind {
        match self {
            Self::Connect { .. } => PollErrorKind::Connect,
            Self::Timeout(..) => PollErrorKind::Timeout,
            Self::HostKeyMismatch { .. } => PollErrorKind::HostKeyMismatch,
            Self::AuthFailed(_) => PollErrorKind::AuthFailed,
            Self::OutputTooLarge(_) => PollErrorKind::OutputTooLarge,
            Self::Protocol(_) => PollErrorKind::Protocol,
            Self::NoCommonAlgorithm { .. } => PollErrorKind::Algorithms,
        }
    }
}

/// What a script run produced.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_status: Option<u32>,
    pub exit_signal: Option<String>,
    pub duration: Duration,
}

/// Checks the server's key against the policy and remembers what was presented.
struct ClientHandler {
    policy: HostKeyPolicy,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        *self.presented.lock().expect("not poisoned") = Some(key.clone());
        Ok(match &self.policy {
            HostKeyPolicy::AnyKey => true,
            HostKeyPolicy::Fingerprint(expected) => fingerprint(key) == *expected,
        })
    }
}

/// An authenticated connection.
pub struct Session {
    handle: Handle<ClientHandler>,
    /// The host key the server presented.
    pub host_key: PublicKey,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", fingerprint(&self.host_key))
    }
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        // Keepalives find a dead or half-open connection well before the inactivity limit.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        inactivity_timeout: Some(Duration::from_secs(90)),
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(cipher_order(aes_in_hardware())),
            key: std::borrow::Cow::Borrowed(HOST_KEY_ALGORITHMS),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// The host-key signature algorithms accepted, best first: russh's list without `ssh-rsa`,
/// whose signatures use SHA-1 (RSA host keys still work, signed with rsa-sha2-512 or
/// rsa-sha2-256, which every OpenSSH since 7.2 offers).
pub const HOST_KEY_ALGORITHMS: &[russh::keys::Algorithm] = &[
    russh::keys::Algorithm::Ed25519,
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP256,
    },
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP384,
    },
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP521,
    },
    russh::keys::Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    russh::keys::Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// Ciphers to offer, best first. Both AEADs are sound; AES-GCM is cheaper for both ends when
/// the CPU has AES and carry-less multiply instructions; without them AES runs in software,
/// and ChaCha20-Poly1305 (russh's own first choice) stays first. The CTR
/// ciphers stay as fallbacks for old servers.
fn cipher_order(aes_in_hardware: bool) -> &'static [russh::cipher::Name] {
    use russh::cipher::{AES_128_CTR, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    if aes_in_hardware {
        &[
            AES_256_GCM,
            CHACHA20_POLY1305,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ]
    } else {
        &[
            CHACHA20_POLY1305,
            AES_256_GCM,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ]
    }
}

/// Whether this CPU runs AES-GCM in hardware.
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn protocol(e: russh::Error) -> SshError {
    SshError::Protocol(e.to_string())
}

/// Dials and, unless `authenticate` is false, logs in. Without authentication the session is
/// only good for reading the host key.
pub async fn connect(target: &Target, authenticate: bool) -> Result<Session, SshError> {
    let addr = format!("{}:{}", target.address, target.port);
    let presented = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        policy: target.host_key.clone(),
        presented: presented.clone(),
    };
    let stream = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
        .await
        .map_err(|e| SshError::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    // russh's `nodelay` setting applies only to sockets it dials itself. Without it, a poll's
    // small packets (channel open, exec, stdin EOF) wait on Nagle's algorithm for the server's
    // delayed ACK, which adds tens of milliseconds to every poll.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(%addr, error = %e, "cannot disable Nagle's algorithm on the SSH socket");
    }
    let mut handle = match client::connect_stream(config(), BurstReader::new(stream), handler).await
    {
        Ok(h) => h,
        Err(err) => {
            let seen = presented.lock().expect("not poisoned").take();
            return Err(match (err, seen, &target.host_key) {
                (russh::Error::UnknownKey, Some(key), HostKeyPolicy::Fingerprint(expected)) => {
                    SshError::HostKeyMismatch {
                        expected: expected.clone(),
                        presented_fingerprint: fingerprint(&key),
                        presented: Box::new(key),
                    }
                }
                (russh::Error::IO(e), _, _) => SshError::Connect {
                    addr,
                    reason: e.to_string(),
                },
                (russh::Error::Disconnect | russh::Error::HUP, _, _) => SshError::Connect {
                    addr,
                    reason: "the server closed the connection during the handshake".into(),
                },
                (russh::Error::NoCommonAlgo { kind, theirs, .. }, _, _) => {
                    SshError::NoCommonAlgorithm {
                        what: match kind {
                            russh::AlgorithmKind::Kex => "key exchange",
                            russh::AlgorithmKind::Key => "host key",
                            russh::AlgorithmKind::Cipher => "cipher",
                            russh::AlgorithmKind::Compression => "compression",
                            russh::AlgorithmKind::Mac => "MAC",
                        },
                        offered: theirs.join(", "),
                    }
                }
                (e, _, _) => protocol(e),
            });
        }
    };
    let host_key = presented
        .lock()
        .expect("not poisoned")
        .take()
        .ok_or_else(|| SshError::Protocol("the server presented no host key".into()))?;
    if authenticate {
        let result = match &target.auth {
            Auth::Password(password) => handle
                .authenticate_password(target.username.clone(), password.as_str())
                .await
                .map_err(protocol)?,
            Auth::Key(key) => {
                let hash = if key.algorithm().is_rsa() {
                    match handle.best_supported_rsa_hash().await.map_err(protocol)? {
                        Some(Some(alg)) => Some(alg),
                        // The server lists only ssh-rsa: SHA-1 signatures are not used, say so.
                        Some(None) => {
                            return Err(SshError::AuthFailed(
                                "the server accepts only SHA-1 RSA signatures (ssh-rsa); \
                                 hostwatch signs with rsa-sha2-256/512 only"
                                    .into(),
                            ));
                        }
                        // No server-sig-algs extension: rsa-sha2-256 is what every current server takes.
                        None => Some(HashAlg::Sha256),
                    }
                } else {
                    None
                };
                handle
                    .authenticate_publickey(
                        target.username.clone(),
                        PrivateKeyWithHashAlg::new(key.clone(), hash),
                    )
                    .await
                    .map_err(protocol)?
            }
        };
        if !result.success() {
            let what = match &target.auth {
                Auth::Password(_) => "password".to_owned(),
                Auth::Key(key) if key.algorithm().is_rsa() => {
                    "RSA key (signed with rsa-sha2-256/512; SHA-1 ssh-rsa signatures are \
                     never used)"
                        .to_owned()
                }
                Auth::Key(key) => format!("{} key", key.algorithm().as_str()),
            };
            return Err(SshError::AuthFailed(format!(
                "the server refused the {what} for user {:?}",
                target.username
            )));
        }
    }
    Ok(Session { handle, host_key })
}

impl Session {
    /// Whether the connection is gone (closed, or keepalives went unanswered).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Runs `script` on `sh -s`, collecting at most `cap` bytes of stdout (and of stderr).
    /// Past the cap the channel is closed and the run fails.
    pub async fn run_script(&self, script: &[u8], cap: usize) -> Result<ExecOutput, SshError> {
        let started = Instant::now();
        let mut channel = self.handle.channel_open_session().await.map_err(protocol)?;
        channel.exec(true, REMOTE_COMMAND).await.map_err(protocol)?;
        channel
            .data_bytes(script.to_vec())
            .await
            .map_err(protocol)?;
        channel.eof().await.map_err(protocol)?;
        let mut out = ExecOutput {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_status: None,
            exit_signal: None,
            duration: Duration::ZERO,
        };
        // EOF, exit status and close arrive in any order: read until the channel is gone.
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if out.stdout.len() + data.len() > cap {
                        let _ = channel.close().await;
                        return Err(SshError::OutputTooLarge(cap));
                    }
                    out.stdout.extend_from_slice(&data);
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    let room = cap.saturating_sub(out.stderr.len());
                    out.stderr.extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    out.exit_signal = Some(format!("{signal_name:?}"))
                }
                ChannelMsg::Failure => {
                    return Err(SshError::Protocol(
                        "the server refused to run the command".into(),
                    ));
                }
                _ => {}
            }
        }
        out.duration = started.elapsed();
        Ok(out)
    }

    /// Closes the connection politely.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_order_follows_the_hardware() {
        let with_aes = cipher_order(true);
        let without = cipher_order(false);
        assert_eq!(with_aes[0], russh::cipher::AES_256_GCM);
        assert_eq!(without[0], russh::cipher::CHACHA20_POLY1305);
        // Same offer either way, only the order differs, and every name is one russh knows.
        let mut a: Vec<&str> = with_aes.iter().map(|n| n.as_ref()).collect();
        let mut b: Vec<&str> = without.iter().map(|n| n.as_ref()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        for name in with_aes {
            assert!(
                russh::cipher::ALL_CIPHERS.contains(&name),
                "{name:?} unknown"
            );
        }
    }
}
