//! The deploy's readiness and drain settings working together: two proxies
//! behind a local haproxy (Debian package; standing in for a Kubernetes
//! Service) that health-checks /ready, a load loop running, each proxy sent
//! SIGTERM and restarted in turn on its port. 0 failed requests. haproxy
//! retries nothing here, as a Kubernetes Service would not: the test fails
//! without the drain delay (checked by hand with LGTM_SHUTDOWN_DELAY=0s).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::prometheus::free_port;
use common::*;

fn start_proxy(port: u16, upstream: &str) -> ProxyProc {
    ProxyProc::start(&[
        ("LGTM_LISTEN", &format!("127.0.0.1:{port}")),
        ("LGTM_LOKI_URL", upstream),
        ("LGTM_LOKI_BASIC_AUTH", "false"),
        // The pod's preStop + shutdown_delay: keep serving while the
        // load balancer notices /ready = 503.
        ("LGTM_SHUTDOWN_DELAY", "1s"),
        ("LGTM_SHUTDOWN_GRACE", "10s"),
    ])
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy(front: u16, backends: &[u16], dir: &std::path::Path) -> Haproxy {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server p{i} 127.0.0.1:{p} check inter 100ms fall 1 rise 1\n"))
        .collect();
    let cfg = format!(
        "global\n  maxconn 1024\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 0\nfrontend f\n  bind 127.0.0.1:{front}\n  default_backend b\nbackend b\n  option httpchk GET /ready\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (Debian package; scripts/test.sh installs it)");
    Haproxy(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_restart_behind_a_load_balancer_loses_no_request() {
    let up = RecordingUpstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let mut proxies = [
        start_proxy(ports[0], &up.url()),
        start_proxy(ports[1], &up.url()),
    ];
    let front = free_port();
    let _lb = haproxy(front, &ports, dir.path());
    let url = format!("http://127.0.0.1:{front}/loki/api/v1/labels");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_status(&url).await != Some(200) {
        assert!(Instant::now() < deadline, "haproxy never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match get_status(&url).await {
                        Some(200) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    for i in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxies[i].signal("TERM");
        let exit = tokio::task::block_in_place(|| proxies[i].wait_exit(Duration::from_secs(20)))
            .expect("did not exit");
        assert!(exit.success());
        proxies[i] = start_proxy(ports[i], &up.url());
        // Let the health check see it again before touching the other one.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("rolling restart: {ok} requests ok, {failed} failed");
    assert!(ok > 200, "the load loop barely ran: {ok}");
    assert_eq!(failed, 0, "requests failed during the rolling restart");
}

async fn get_status(url: &str) -> Option<u16> {
    let req = http::Request::get(url).body(empty()).unwrap();
    match client().request(req).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let _ = read(res).await;
            Some(status)
        }
        Err(_) => None,
    }
}
