//! The real `hostwatch serve` binary as a test fixture: a child process on a free loopback port
//! with its own data dir, its log written to a file, driven over HTTP with reqwest.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_hostwatch");

/// A running (or stopped) `hostwatch serve`.
pub struct Service {
    pub child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    pub log_path: PathBuf,
    http: reqwest::Client,
}

impl Service {
    /// Spawns `hostwatch serve` on a free port with `data` as its data dir and, when given,
    /// `database_url`; `extra` are further flags. Does not wait.
    pub fn spawn(data: &Path, database_url: Option<&str>, extra: &[&str]) -> Self {
        let port = super::free_port();
        Self::spawn_on(data, database_url, extra, port)
    }

    /// Like [`Service::spawn`] on a given port.
    pub fn spawn_on(data: &Path, database_url: Option<&str>, extra: &[&str], port: u16) -> Self {
        hostwatch::crypto::install_tls_provider();
        let log_path = data.with_extension(format!("{port}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("HOSTWATCH_DATA_DIR", data)
            .env_remove("HOSTWATCH_MASTER_KEY")
            .env_remove("NO_COLOR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap());
        match database_url {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        let child = cmd.spawn().unwrap();
        Self {
            child: Some(child),
            port,
            data: data.to_owned(),
            log_path,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// Spawns and waits until `/healthz` answers.
    pub async fn start(data: &Path, database_url: Option<&str>, extra: &[&str]) -> Self {
        let service = Self::spawn(data, database_url, extra);
        service.wait_healthy().await;
        service
    }

    /// Waits until `/healthz` answers 200 (30 s at most).
    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hostwatch did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The admin token the first start wrote.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Sends a request (with `token` as bearer unless empty) and returns status and JSON body
    /// (`Null` when the body is empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .timeout(Duration::from_secs(30));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (`within` at most); returns the log.
    pub async fn wait_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in the log: {log}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; waits for the exit (20 s at most) and returns whether it was clean.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself (`within` at most); returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
