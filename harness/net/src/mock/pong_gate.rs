//! The byte stream under a client's websocket, with a gate on the pongs going out.
//!
//! tungstenite answers every ping itself, below the relay, so a fault that black-holes the
//! link between the client and the service could not otherwise swallow the pong, and a
//! client's dead-peer detection (PING-002) would never be exercised over real sockets. The gate
//! follows the outgoing frames (RFC 6455 5.2) and withholds a whole pong frame while the gate
//! says so; every other byte passes unchanged.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Whether pongs are withheld at this moment.
pub(crate) type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

const OPCODE_PONG: u8 = 0xA;

/// Where the outgoing byte stream is: in a frame's header, or in its payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Frames {
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes still to come; meaningful once the header is complete.
    remaining: u64,
    in_payload: bool,
}

impl Frames {
    fn at_frame_start(&self) -> bool {
        self.header_len == 0 && !self.in_payload
    }

    /// The header's full length, once its first two bytes are known.
    fn header_size(&self) -> Option<usize> {
        if self.header_len < 2 {
            return None;
        }
        let b1 = self.header[1];
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        Some(2 + ext + mask)
    }

    fn payload_len(&self) -> u64 {
        let b1 = self.header[1] & 0x7F;
        match b1 {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }

    /// Takes `buf` as written; returns how many of its bytes belong to the current frame (all of
    /// them when the frame goes on past `buf`).
    fn consume(&mut self, buf: &[u8]) -> usize {
        let mut used = 0;
        while used < buf.len() {
            if self.in_payload {
                let left = (buf.len() - used) as u64;
                let take = self.remaining.min(left);
                used += take as usize;
                self.remaining -= take;
                if self.remaining == 0 {
                    *self = Frames::default();
                    return used;
                }
                continue;
            }
            if let Some(b) = buf.get(used) {
                if let Some(slot) = self.header.get_mut(self.header_len) {
                    *slot = *b;
                }
                self.header_len += 1;
                used += 1;
            }
            if self.header_size() == Some(self.header_len) {
                self.remaining = self.payload_len();
                self.in_payload = true;
                if self.remaining == 0 {
                    *self = Frames::default();
                    return used;
                }
            }
        }
        used
    }
}

/// An IO stream whose outgoing pong frames are withheld while [`Gate`] says so.
pub(crate) struct PongGate<S> {
    inner: S,
    gate: Option<Gate>,
    frames: Frames,
    /// The current frame is withheld (decided at its first byte).
    withholding: bool,
}

impl<S> PongGate<S> {
    pub(crate) fn new(inner: S, gate: Option<Gate>) -> Self {
        PongGate { inner, gate, frames: Frames::default(), withholding: false }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PongGate<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PongGate<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(gate) = &this.gate else { return Pin::new(&mut this.inner).poll_write(cx, buf) };
        let Some(first) = buf.first() else { return Pin::new(&mut this.inner).poll_write(cx, buf) };
        if this.frames.at_frame_start() {
            this.withholding = first & 0x0F == OPCODE_PONG && gate();
        }
        // The bytes of `buf` that belong to the current frame share its fate.
        let mut probe = this.frames;
        let run = probe.consume(buf);
        let Some(run_bytes) = buf.get(..run) else { return Poll::Ready(Ok(0)) };
        if this.withholding {
            this.frames = probe;
            return Poll::Ready(Ok(run));
        }
        match Pin::new(&mut this.inner).poll_write(cx, run_bytes) {
            Poll::Ready(Ok(n)) => {
                if n == run {
                    this.frames = probe;
                } else if let Some(written) = run_bytes.get(..n) {
                    this.frames.consume(written);
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt as _;

    fn frame(opcode: u8, payload_len: usize) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match payload_len {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend(std::iter::repeat_n(opcode, payload_len));
        f
    }

    /// Writes `stream` through a gate in chunks of `chunk` bytes; returns what came out.
    async fn through(stream: &[u8], chunk: usize, closed: bool) -> Vec<u8> {
        let flag = Arc::new(AtomicBool::new(closed));
        let f = flag.clone();
        let gate: Gate = Arc::new(move || f.load(Ordering::Relaxed));
        let mut g = PongGate::new(Vec::new(), Some(gate));
        for c in stream.chunks(chunk) {
            g.write_all(c).await.unwrap();
        }
        g.inner
    }

    #[tokio::test]
    async fn pongs_are_withheld_whole_and_everything_else_passes_in_any_chunking() {
        let binary = frame(0x2, 300);
        let big = frame(0x2, 70_000);
        let pong = frame(OPCODE_PONG, 9);
        let ping = frame(0x9, 9);
        let empty_pong = frame(OPCODE_PONG, 0);
        let stream = [binary.clone(), pong.clone(), big.clone(), empty_pong.clone(), ping.clone()].concat();
        let without = [binary, big, ping].concat();
        for chunk in [1, 2, 3, 7, 64, 1000, stream.len()] {
            assert_eq!(through(&stream, chunk, true).await, without, "chunks of {chunk}");
            assert_eq!(through(&stream, chunk, false).await, stream, "chunks of {chunk}, gate open");
        }
    }

    #[tokio::test]
    async fn the_fate_of_a_frame_is_decided_at_its_first_byte() {
        let pong = frame(OPCODE_PONG, 20);
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let gate: Gate = Arc::new(move || f.load(Ordering::Relaxed));
        let mut g = PongGate::new(Vec::new(), Some(gate));
        g.write_all(&pong[..5]).await.unwrap();
        flag.store(true, Ordering::Relaxed);
        g.write_all(&pong[5..]).await.unwrap();
        g.write_all(&pong).await.unwrap();
        assert_eq!(g.inner, pong, "the first pong went out whole, the second not at all");
    }
}
