//! An in-process upstream on 127.0.0.1:0 that records every request (method,
//! target, headers, body) and answers as told.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::client::{PatternBody, TestBody};

/// Bodies up to this size are kept whole; larger ones are only counted.
const KEEP_BODY: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target as received (absolute-form when sent to a proxy).
    pub uri: String,
    pub target: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub body_len: u64,
    pub trailers: Option<HeaderMap>,
}

#[derive(Clone)]
pub enum Behavior {
    /// 200 with a small JSON body naming the target.
    Ok,
    /// Answer with these parts.
    Fixed {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: Bytes,
    },
    /// Echo the request body back (chunked) with the request's content-type.
    Echo,
    /// Stream `n` bytes of the test pattern.
    Download(u64),
    /// Accept the request and never answer.
    Hang,
    /// Never answer GETs; answer everything else like `Ok`.
    HangReads,
    /// A gRPC answer: an empty message, then `grpc-status` (and
    /// `grpc-message`) trailers.
    Grpc { status: u32, message: &'static str },
    /// Send headers promising `n` bytes, send half, then drop the connection.
    CutMidBody(u64),
    /// Send headers promising `n` bytes, send half, then go silent (keep
    /// the connection open).
    StallMidBody(u64),
}

pub struct RecordingUpstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    behavior: Arc<Mutex<Behavior>>,
}

impl RecordingUpstream {
    pub async fn start(behavior: Behavior) -> Self {
        Self::start_with(behavior, None).await
    }

    /// A TLS upstream (ALPN h2 and http/1.1) with a fresh self-signed
    /// certificate for 127.0.0.1; returns the CA PEM to trust.
    pub async fn start_tls(behavior: Behavior) -> (Self, String) {
        let (acceptor, pem) = super::tls::self_signed_acceptor();
        (Self::start_with(behavior, Some(acceptor)).await, pem)
    }

    async fn start_with(behavior: Behavior, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let behavior = Arc::new(Mutex::new(behavior));
        let (l, b) = (log.clone(), behavior.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (l, b, tls) = (l.clone(), b.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| handle(req, l.clone(), b.clone()));
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    // Above the proxy's own limits, so the proxy's are tested.
                    builder.http1().max_headers(1000).max_buf_size(1 << 20);
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        RecordingUpstream {
            addr,
            log,
            behavior,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set(&self, b: Behavior) {
        *self.behavior.lock().unwrap() = b;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the upstream saw no request")
    }
}

async fn handle(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Recorded>>>,
    behavior: Arc<Mutex<Behavior>>,
) -> Result<Response<TestBody>, Infallible> {
    let behavior = behavior.lock().unwrap().clone();
    let (parts, mut body) = req.into_parts();
    let mut rec = Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: Vec::new(),
        body_len: 0,
        trailers: None,
    };
    let hang = matches!(behavior, Behavior::Hang)
        || (matches!(behavior, Behavior::HangReads) && parts.method == http::Method::GET);
    if hang {
        log.lock().unwrap().push(rec.clone());
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        match frame.into_data() {
            Ok(data) => {
                rec.body_len += data.len() as u64;
                if rec.body.len() + data.len() <= KEEP_BODY {
                    rec.body.extend_from_slice(&data);
                }
            }
            Err(frame) => rec.trailers = frame.into_trailers().ok(),
        }
    }
    let echo = rec.body.clone();
    let content_type = parts.headers.get("content-type").cloned();
    log.lock().unwrap().push(rec);
    let res = match behavior {
        Behavior::Ok | Behavior::HangReads => Response::new(full(Bytes::from(format!(
            "{{\"status\":\"success\",\"target\":{:?}}}",
            parts.uri.to_string()
        )))),
        Behavior::Fixed {
            status,
            headers,
            body,
        } => {
            let mut r = Response::new(full(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                r.headers_mut().append(k, v.parse().unwrap());
            }
            r
        }
        Behavior::Echo => {
            let mut r =
                Response::new(PatternBody::chunked_from(Bytes::from(echo), 7919).boxed_unsync());
            if let Some(ct) = content_type {
                r.headers_mut().insert("content-type", ct);
            }
            r
        }
        Behavior::Download(n) => {
            let mut r = Response::new(PatternBody::new(n).boxed_unsync());
            r.headers_mut()
                .insert("content-length", n.to_string().parse().unwrap());
            r
        }
        Behavior::CutMidBody(n) => {
            let mut r = Response::new(PatternBody::failing_after(n, n / 2).boxed_unsync());
            r.headers_mut()
                .insert("content-length", n.to_string().parse().unwrap());
            r
        }
        Behavior::Grpc { status, message } => {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", status.to_string().parse().unwrap());
            if !message.is_empty() {
                trailers.insert("grpc-message", message.parse().unwrap());
            }
            // One length-prefixed, empty protobuf message when OK.
            let data = if status == 0 {
                Some(Bytes::from_static(&[0, 0, 0, 0, 0]))
            } else {
                None
            };
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(
                data.map(|d| Ok(http_body::Frame::data(d)))
                    .into_iter()
                    .chain(std::iter::once(Ok(http_body::Frame::trailers(trailers)))),
            ));
            let mut r = Response::new(BodyExt::boxed_unsync(body));
            r.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            r
        }
        Behavior::StallMidBody(n) => {
            let mut r = Response::new(PatternBody::stalling_after(n, n / 2).boxed_unsync());
            r.headers_mut()
                .insert("content-length", n.to_string().parse().unwrap());
            r
        }
        Behavior::Hang => unreachable!(),
    };
    Ok(res)
}

fn full(b: Bytes) -> TestBody {
    Full::new(b)
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}
