//! The real `lgtm-proxy` binary as a child process. It listens on port 0 and
//! the harness reads the bound address from its `serving` log line, so
//! tests never race for ports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ProxyProc {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lgtm-proxy")
}

/// A command with a clean environment: no inherited LGTM_* or egress-proxy
/// variables, only PATH.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl ProxyProc {
    /// Start with env vars (LGTM_LISTEN defaults to 127.0.0.1:0) and wait
    /// until it serves.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut cmd = command(&[
            ("LGTM_LISTEN", "127.0.0.1:0"),
            ("LGTM_SHUTDOWN_DELAY", "0s"),
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Start with a TOML file as well.
    pub fn start_with_file(toml: &str, env: &[(&str, &str)]) -> (Self, tempfile::NamedTempFile) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), toml).unwrap();
        let path = file.path().to_str().unwrap().to_string();
        let mut all: Vec<(&str, &str)> = env.to_vec();
        all.push(("LGTM_CONFIG", &path));
        (Self::start(&all), file)
    }

    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lgtm-proxy");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("\"message\":\"serving\"") {
                        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                        let _ = tx.send(v["listen"].as_str().unwrap().parse().unwrap());
                    }
                    let mut l = logs.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        // Wait for the address, or notice at once that the process exited.
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(20)) {
                break a;
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(50));
                panic!("lgtm-proxy did not start:\n{}", logs.lock().unwrap());
            }
        };
        ProxyProc { child, addr, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Await one exchange with the proxy, at most 20 s: a client or proxy
    /// that never answers fails the test naming `what`, with the proxy's
    /// logs, instead of holding the whole test run.
    pub async fn within<F: std::future::Future>(&self, what: &str, exchange: F) -> F::Output {
        match tokio::time::timeout(Duration::from_secs(20), exchange).await {
            Ok(out) => out,
            Err(_) => panic!(
                "{what}: no outcome within 20 s; lgtm-proxy logs:\n{}",
                self.logs()
            ),
        }
    }

    /// Wait until the logs contain `needle` (they arrive asynchronously).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A number field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, `Threads`).
    pub fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM")
    }

    /// Resident set size (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS")
    }

    /// `lgtm_proxy_config_reloads_total{result="success"}` from /metrics.
    pub async fn successful_reloads(&self) -> f64 {
        let (_, _, m) = super::client::get(&self.url("/metrics")).await;
        super::client::sample(
            &String::from_utf8_lossy(&m),
            &["lgtm_proxy_config_reloads_total", "success"],
        )
        .unwrap_or(0.0)
    }

    /// Open file descriptors.
    pub fn fd_count(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count() as u64
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Point every `/var/run/secrets/lgtm/<name>` path in a config text at a
/// file made in `dir` holding a distinct token (`token-<name>`), so shipped
/// example configs load here.
pub fn with_local_secrets(text: &str, dir: &std::path::Path) -> String {
    const PREFIX: &str = "/var/run/secrets/lgtm/";
    let mut out = text.to_string();
    for (i, _) in text.match_indices(PREFIX) {
        let name: String = text[i + PREFIX.len()..]
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        let file = dir.join(&name);
        std::fs::write(&file, format!("token-{name}\n")).unwrap();
        out = out.replace(&format!("{PREFIX}{name}"), file.to_str().unwrap());
    }
    out
}

/// Run the binary once with a config file and `args` (blocking, off the
/// test's runtime, which may be serving its peers): exit code, stdout,
/// stderr.
pub async fn run_cli<S: AsRef<std::ffi::OsStr>>(args: &[S], config: &str) -> (i32, String, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config).unwrap();
    let mut cmd = command(&[]);
    cmd.arg("--config").arg(file.path()).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
