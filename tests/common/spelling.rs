//! Attacker's spellings of a path and a raw HTTP/1.1 request that no
//! client library normalizes first, for the class-boundary tests.

use std::path::Path;

use super::proxy::ProxyProc;

/// A client token file under `dir` holding `<name>-secret`.
pub fn token_file(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{name}-secret\n")).unwrap();
    p.display().to_string()
}

/// Spellings of `path` (the first segment is the route prefix and stays):
/// each later segment with one letter percent-encoded (both hex cases),
/// doubled slashes, a trailing slash, `.` and `..` segments in several
/// spellings, an encoded slash, a backslash, and case variants.
pub fn spellings(path: &str) -> Vec<String> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let join = |s: &[String]| format!("/{}", s.join("/"));
    let owned: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
    let mut out = vec![path.to_string(), format!("{path}/"), format!("/{path}")];
    for i in 0..segs.len() {
        let b = segs[i].as_bytes()[0];
        for enc in [format!("%{b:02x}"), format!("%{b:02X}")] {
            let mut s = owned.clone();
            s[i] = format!("{enc}{}", &segs[i][1..]);
            out.push(join(&s));
        }
        let mut upper = owned.clone();
        upper[i] = segs[i].to_ascii_uppercase();
        out.push(join(&upper));
        if i > 0 {
            let (a, b) = (owned[..i].join("/"), owned[i..].join("/"));
            out.push(format!("/{a}//{b}"));
            out.push(format!("/{a}/./{b}"));
            out.push(format!("/{a}/%2e/{b}"));
            out.push(format!("/{a}/x/../{b}"));
            out.push(format!("/{a}/x/%2E%2e/{b}"));
            out.push(format!("/{a}%2F{b}"));
            out.push(format!("/{a}%2f{b}"));
            out.push(format!("/{a}\\{b}"));
        }
    }
    out
}

/// The spellings that keep the path's meaning: what a decoding upstream
/// would have run as the real endpoint (encoded letters, doubled slash,
/// trailing slash).
pub fn same_meaning(path: &str, spelled: &str) -> bool {
    !spelled.contains("%2F")
        && !spelled.contains("%2f")
        && !spelled.contains('\\')
        && !spelled.contains("/./")
        && !spelled.contains("/%2e/")
        && !spelled.contains("..")
        && !spelled.contains("%2E%2e")
        && spelled.to_ascii_lowercase() == spelled
        || spelled == path
}

pub async fn raw_request(
    proxy: &ProxyProc,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A raw socket: no client library normalizes the target first.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Answered by the proxy itself, nothing forwarded: 400 (no canonical
/// form), 403 (class), 404 (no route: an upper-case prefix).
pub fn refused(status: u16) -> bool {
    matches!(status, 400 | 403 | 404)
}
