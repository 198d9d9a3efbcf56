//! A real OpenSSH sshd (Debian's openssh-server) on a loopback port, with its own host key,
//! config and authorized_keys, for the SSH tests. Needs root (it creates test users).
//!
//! Users: `hwtest` (plain login, `/bin/sh`, password [`PASSWORD`]) and `hwadmin` (the same, with
//! passwordless sudo, for provisioning). Accounts are unlocked with `usermod -p` because sshd
//! runs with `UsePAM no`.

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::Mutex,
    time::{Duration, Instant},
};

/// The password of both test users.
pub const PASSWORD: &str = "hw-test-Pa55word";

static USERS: Mutex<bool> = Mutex::new(false);

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates the test users once per test binary.
pub fn ensure_users() {
    let mut done = USERS.lock().unwrap();
    if *done {
        return;
    }
    assert!(
        nix_is_root(),
        "the SSH tests create users and start sshd: run them as root (scripts/test.sh does)"
    );
    for user in ["hwtest", "hwadmin"] {
        if !Command::new("id")
            .arg(user)
            .output()
            .unwrap()
            .status
            .success()
        {
            run(Command::new("useradd").args(["-m", "-s", "/bin/sh", user]));
        }
        let hash = Command::new("openssl")
            .args(["passwd", "-6", PASSWORD])
            .output()
            .unwrap();
        let hash = String::from_utf8(hash.stdout).unwrap();
        run(Command::new("usermod").args(["-p", hash.trim(), user]));
    }
    std::fs::write(
        "/etc/sudoers.d/hwadmin",
        "hwadmin ALL=(ALL) NOPASSWD: ALL\n",
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    *done = true;
}

fn nix_is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A running sshd.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    host_key: PathBuf,
    extra_config: String,
    /// `AuthorizedKeysFile`'s value; `{dir}` stands for the sshd's directory.
    keys_file: String,
}

impl Sshd {
    /// Starts sshd on a free loopback port with a new ed25519 host key.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Starts sshd with extra config lines (e.g. a `ForceCommand` for a hostile host).
    pub fn start_with(extra_config: &str) -> Self {
        Self::start_with_key("ed25519", extra_config)
    }

    /// Starts sshd with a host key of `kind` (`ed25519`, `rsa`, …) and extra config lines.
    pub fn start_with_key(kind: &str, extra_config: &str) -> Self {
        ensure_users();
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_key_a");
        keygen(&host_key, kind);
        std::fs::write(dir.path().join("authorized_keys"), "").unwrap();
        let port = super::free_port();
        let mut sshd = Self {
            dir,
            port,
            child: None,
            host_key,
            extra_config: extra_config.to_owned(),
            keys_file: "{dir}/authorized_keys .ssh/authorized_keys".to_owned(),
        };
        sshd.spawn();
        sshd
    }

    /// Starts sshd reading authorized keys from `keys_file` (`{dir}` stands for its own
    /// directory, which is opened to every user so that they can read files in it).
    pub fn start_with_keys_file(keys_file: &str, extra_config: &str) -> Self {
        let mut sshd = Self::start_with(extra_config);
        sshd.keys_file = keys_file.to_owned();
        run(Command::new("chmod").arg("755").arg(sshd.dir.path()));
        sshd.restart();
        sshd
    }

    /// Replaces the extra config lines (takes effect at the next restart).
    pub fn set_extra_config(&mut self, extra_config: &str) {
        self.extra_config = extra_config.to_owned();
    }

    fn config(&self) -> String {
        let d = self.dir.path().display();
        let keys_file = self.keys_file.replace("{dir}", &d.to_string());
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {keys_file}\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication yes\nPubkeyAuthentication yes\nKbdInteractiveAuthentication no\n\
             PermitRootLogin no\nMaxStartups 100\nMaxSessions 20\nLogLevel VERBOSE\nUseDNS no\n{extra}\n",
            port = self.port,
            key = self.host_key.display(),
            extra = self.extra_config,
        )
    }

    fn spawn(&mut self) {
        let config = self.dir.path().join("sshd_config");
        std::fs::write(&config, self.config()).unwrap();
        let log = self.dir.path().join("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server) runs");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops sshd and every session it started, as a host restart would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Each connection is served by a child of the listener and that child's own
            // unprivileged child, which holds the socket: end the whole tree.
            for pid in descendants(child.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts on the same port with the same host key.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Restarts on the same port with a new host key.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        self.host_key = self.dir.path().join("host_key_b");
        keygen(&self.host_key, "ed25519");
        self.spawn();
    }

    /// Allows a public key (OpenSSH line) for every user.
    pub fn authorize(&self, public_key: &str) {
        let path = self.dir.path().join("authorized_keys");
        let mut keys = std::fs::read_to_string(&path).unwrap();
        keys.push_str(public_key.trim());
        keys.push('\n');
        std::fs::write(path, keys).unwrap();
    }

    /// `SHA256:…` of the host key in use.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.host_key.with_extension("pub"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: the ppid follows the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

fn keygen(path: &Path, kind: &str) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(path));
}

/// `ssh-keygen -l` fingerprint of a public key file.
pub fn fingerprint_of(pub_path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// A client key pair made by ssh-keygen: (private key text, public key line).
pub fn client_key(kind: &str, passphrase: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "hostwatch-test",
        "-f",
    ])
    .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    run(&mut cmd);
    (
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(path.with_extension("pub")).unwrap(),
    )
}
