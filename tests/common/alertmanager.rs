//! A real Alertmanager (Debian's `prometheus-alertmanager` 0.25) on a free
//! port, served under `/alertmanager` as Mimir serves it, behind basic auth
//! (`--web.config.file`), with clustering off so several run side by side.

use std::process::{Child, Command, Stdio};

use base64::Engine as _;

use super::prometheus::{free_port, wait_ready, USER};

pub const PREFIX: &str = "/alertmanager";

const CONFIG: &str =
    "route:\n  receiver: default\n  group_wait: 1s\nreceivers:\n  - name: default\n";

pub struct Alertmanager {
    child: Child,
    pub port: u16,
    /// The basic-auth password (user: `prometheus::USER`).
    pub password: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub fn start(password: &str) -> Alertmanager {
        let bin = "/usr/bin/prometheus-alertmanager";
        assert!(
            std::path::Path::new(bin).exists(),
            "prometheus-alertmanager is not installed: run scripts/test.sh, which installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        let web = dir.path().join("web.yml");
        std::fs::write(&config, CONFIG).unwrap();
        let hash = bcrypt::hash(password, 4).unwrap();
        std::fs::write(
            &web,
            format!("basic_auth_users:\n  \"{USER}\": \"{hash}\"\n"),
        )
        .unwrap();
        let prefix_arg = format!("--web.route-prefix={PREFIX}");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--web.config.file={}", web.display()))
                .arg(&prefix_arg)
                .arg("--cluster.listen-address=")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start alertmanager");
            if wait_ready(&mut child, port, &[&prefix_arg], password) {
                return Alertmanager {
                    child,
                    port,
                    password: password.to_string(),
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("alertmanager did not become ready");
    }

    /// The URL to configure as the upstream (no path: the proxy's
    /// `/alertmanager` route keeps the prefix).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET a v2 API path (e.g. `/api/v2/alerts`) directly, with its own
    /// credentials.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", self.password));
        let req = http::Request::get(format!("{}{PREFIX}{path}", self.url()))
            .header("authorization", format!("Basic {auth}"))
            .body(super::client::empty())
            .unwrap();
        let (status, _, body) = super::client::send(req).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
