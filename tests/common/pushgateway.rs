//! A real Pushgateway (Debian's `prometheus-pushgateway`) on a free port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pushgateway {
    child: Child,
    pub port: u16,
}

impl Pushgateway {
    pub fn start() -> Pushgateway {
        let bin = std::env::var("PUSHGATEWAY_BIN")
            .unwrap_or_else(|_| "/usr/bin/prometheus-pushgateway".into());
        assert!(
            std::path::Path::new(&bin).exists(),
            "prometheus-pushgateway is not installed: run scripts/test.sh, which installs it"
        );
        for _ in 0..5 {
            let port = super::prometheus::free_port();
            let mut child = Command::new(&bin)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pushgateway");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let ok = Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg(format!("http://127.0.0.1:{port}/-/ready"))
                    .output()
                    .is_ok_and(|o| o.stdout == b"200");
                if ok {
                    return Pushgateway { child, port };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("pushgateway did not become ready");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
