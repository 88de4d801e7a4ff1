//! A connection's first bytes, read by the listener under
//! `header_read_timeout` before hyper-util's auto builder sees them.
//!
//! The auto builder tells HTTP/1.1 from h2 by reading up to the 24 bytes of
//! the h2 preface, and until it has them no timer of hyper's runs: a client
//! that connects and sends nothing (or half a preface) would hold its
//! connection, and its `max_connections` slot, forever. [`read_preface`]
//! reads the same bytes the same way, so the caller can bound it, and
//! [`Replay`] hands them to the builder, which then decides at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The h2 connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Read until the bytes either are the whole h2 preface or stop matching
/// it (HTTP/1.1): one read for any HTTP/1.1 request, since its first byte
/// already differs or its method does (`POST`, `PUT`, `PATCH`). `None` when
/// the client closed before sending anything.
pub async fn read_preface<I: AsyncRead + Unpin>(mut io: I) -> io::Result<Option<Replay<I>>> {
    let mut head = [0u8; 24];
    let mut filled = 0;
    while filled < head.len() {
        let n = io.read(&mut head[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            break;
        }
        filled += n;
        if head[..filled] != H2_PREFACE[..filled] {
            break;
        }
    }
    Ok(Some(Replay {
        head,
        start: 0,
        end: filled as u8,
        io,
    }))
}

/// A connection whose first bytes were already read: reads return them
/// first, then the connection's own. Writes go straight through.
pub struct Replay<I> {
    head: [u8; 24],
    start: u8,
    end: u8,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let left = &this.head[this.start as usize..this.end as usize];
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.start += n as u8;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn replayed(chunks: &[&[u8]]) -> Option<Vec<u8>> {
        let (mut client, server) = tokio::io::duplex(64);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        tokio::spawn(async move {
            for c in chunks {
                client.write_all(&c).await.unwrap();
                tokio::task::yield_now().await;
            }
            client.shutdown().await.unwrap();
        });
        let mut io = read_preface(server).await.unwrap()?;
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        Some(all)
    }

    #[tokio::test]
    async fn every_byte_is_replayed_for_http1_and_h2_in_any_split() {
        let h1: &[&[u8]] = &[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"];
        assert_eq!(
            replayed(h1).await.unwrap(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let mut h2 = H2_PREFACE.to_vec();
        h2.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        let split: &[&[u8]] = &[&h2[..3], &h2[3..10], &h2[10..]];
        assert_eq!(replayed(split).await.unwrap(), h2);
        // PRI, then something else: stops reading where it differs.
        let odd: &[&[u8]] = &[b"PRI", b" * HTTP/1.1\r\n\r\n"];
        assert_eq!(replayed(odd).await.unwrap(), b"PRI * HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn a_close_before_any_byte_is_none_and_a_half_preface_is_kept() {
        assert_eq!(replayed(&[]).await, None);
        let half: &[&[u8]] = &[b"PRI * HT"];
        assert_eq!(replayed(half).await.unwrap(), b"PRI * HT");
    }

    #[tokio::test]
    async fn a_read_stops_at_the_preface_or_the_first_difference() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"POST /x HTTP/1.1\r\n").await.unwrap();
        // The client stays open: one read must be enough to decide.
        let io = read_preface(server).await.unwrap().unwrap();
        assert_eq!(&io.head[..io.end as usize], b"POST /x HTTP/1.1\r\n");
        let (mut client, server) = tokio::io::duplex(64);
        let mut more = H2_PREFACE.to_vec();
        more.extend_from_slice(b"rest");
        client.write_all(&more).await.unwrap();
        let io = read_preface(server).await.unwrap().unwrap();
        assert_eq!(io.end, 24);
    }
}
