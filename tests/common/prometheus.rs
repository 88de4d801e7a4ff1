//! A real Prometheus (Debian's `prometheus` package) started on a free port
//! with basic auth required and the remote-write receiver on, answering
//! under `/api/prom` like Grafana Cloud's Mimir endpoint.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub const USER: &str = "2668285";

pub struct Prometheus {
    child: Child,
    pub port: u16,
    pub token: String,
    _dir: tempfile::TempDir,
}

pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/prometheus".into());
    path.exists().then_some(path)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Start a Prometheus with this prometheus.yml (`{PORT}` in it becomes
    /// its own port, so it can scrape itself).
    pub fn start(args: &[&str], yml: &str, auth: bool) -> Prometheus {
        Self::start_on(None, args, yml, auth)
    }

    /// Start on a given port (e.g. one a test kept closed until now).
    pub fn start_on(port: Option<u16>, args: &[&str], yml: &str, auth: bool) -> Prometheus {
        let bin =
            binary().expect("prometheus is not installed: run scripts/test.sh, which installs it");
        let dir = tempfile::tempdir().unwrap();
        let token = format!(
            "tok-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ 0x5eed
        );
        let config = dir.path().join("prometheus.yml");
        let web = dir.path().join("web.yml");
        let hash = bcrypt::hash(&token, 4).unwrap();
        std::fs::write(
            &web,
            format!("basic_auth_users:\n  \"{USER}\": \"{hash}\"\n"),
        )
        .unwrap();
        // A port taken between probe and bind fails start-up: retry.
        for _ in 0..5 {
            let port = port.unwrap_or_else(free_port);
            std::fs::write(&config, yml.replace("{PORT}", &port.to_string())).unwrap();
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if auth {
                cmd.arg(format!("--web.config.file={}", web.display()));
            }
            if !args.iter().any(|a| a.starts_with("--enable-feature=agent")) {
                cmd.arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ));
            } else {
                cmd.arg(format!(
                    "--storage.agent.path={}",
                    dir.path().join("agent").display()
                ));
            }
            let mut child = cmd.spawn().expect("start prometheus");
            if wait_ready(&mut child, port, args, &token) {
                return Prometheus {
                    child,
                    port,
                    token,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("prometheus did not become ready");
    }

    pub fn basic_auth(&self) -> String {
        let raw = format!("{USER}:{}", self.token);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An instant query's result vector (`data.result`), asked with the
    /// basic-auth credentials when `auth`.
    pub async fn query(&self, q: &str, auth: bool) -> Vec<serde_json::Value> {
        self.query_under("", q, auth).await
    }

    /// The same for a Prometheus started with `--web.route-prefix=<prefix>`.
    pub async fn query_under(&self, prefix: &str, q: &str, auth: bool) -> Vec<serde_json::Value> {
        let mut enc = String::new();
        for b in q.bytes() {
            if b.is_ascii_alphanumeric() {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        let mut req =
            http::Request::get(format!("{}{prefix}/api/v1/query?query={enc}", self.url()));
        if auth {
            req = req.header("authorization", self.basic_auth());
        }
        let (status, _, body) =
            super::client::send(req.body(super::client::empty()).unwrap()).await;
        assert_eq!(status, 200, "query {q}: {}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

pub fn wait_ready(child: &mut Child, port: u16, args: &[&str], token: &str) -> bool {
    let prefix = args
        .iter()
        .find_map(|a| a.strip_prefix("--web.route-prefix="))
        .unwrap_or("")
        .trim_end_matches('/');
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{token}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: Basic {auth}"))
            .arg(format!("http://127.0.0.1:{port}{prefix}/-/ready"))
            .output();
        if let Ok(o) = out {
            if o.stdout == b"200" {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
