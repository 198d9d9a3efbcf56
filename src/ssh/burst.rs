//! A socket wrapper that reads what the network has in one system call and hands it to russh in
//! the small pieces russh asks for.
//!
//! russh reads each SSH packet with two exact reads, its length and then the rest, and a
//! poll's reply is six or seven packets (channel confirmation, exec success, output, exit
//! status, EOF, close), so a poll cost about fifteen `recvfrom` calls, most of them for a few
//! bytes that were already in the socket. A `BufReader` would fix that with a buffer per
//! connection, which a fleet pays for every idle host. Here a small read is served through one
//! buffer per thread instead: whatever the socket holds is read at once, what the caller did not
//! ask for is kept only until it is asked for, and between bursts a connection holds no buffer.

use std::{
    cell::RefCell,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads at least this large go straight to the socket: nothing to gain by copying them.
const DIRECT_READ: usize = 16 * 1024;
/// The per-thread buffer a small read fills from the socket: more than a poll's reply, so one
/// system call takes everything that arrived together.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// `inner` with small reads batched; writes pass through untouched.
#[derive(Debug)]
pub struct BurstReader<S> {
    inner: S,
    /// Bytes read from `inner` and not yet handed out, from `taken` on. Empty, without an
    /// allocation, whenever everything read has been handed out.
    pending: Vec<u8>,
    taken: usize,
}

impl<S> BurstReader<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            taken: 0,
        }
    }

    /// Bytes read from the socket and not yet handed out.
    fn buffered(&self) -> usize {
        self.pending.len() - self.taken
    }

    fn hand_out(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.buffered().min(buf.remaining());
        buf.put_slice(&self.pending[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.pending.len() {
            self.pending = Vec::new();
            self.taken = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BurstReader<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buffered() > 0 {
            this.hand_out(buf);
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= DIRECT_READ {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        SCRATCH_BUFFER.with_borrow_mut(|scratch| {
            let mut burst = ReadBuf::new(scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut burst) {
                Poll::Ready(Ok(())) => {
                    let read = burst.filled();
                    let n = read.len().min(buf.remaining());
                    buf.put_slice(&read[..n]);
                    if read.len() > n {
                        this.pending = read[n..].to_vec();
                        this.taken = 0;
                    }
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BurstReader<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, io, pin::Pin, task::Context};

    use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

    use super::{BurstReader, DIRECT_READ};

    /// A socket that has `arrivals` to give, each at most in one read, and counts the reads.
    struct Socket {
        arrivals: VecDeque<Vec<u8>>,
        reads: usize,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            self.reads += 1;
            if let Some(mut next) = self.arrivals.pop_front() {
                let n = next.len().min(buf.remaining());
                buf.put_slice(&next[..n]);
                if n < next.len() {
                    self.arrivals.push_front(next.split_off(n));
                }
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Frames like SSH's: a 4-byte length, then that many bytes.
    fn packets(sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            out.extend_from_slice(&(size as u32).to_be_bytes());
            out.extend((0..size).map(|b| (b + i) as u8));
        }
        out
    }

    async fn read_packets(reader: &mut BurstReader<Socket>, count: usize) -> Vec<u8> {
        let mut seen = Vec::new();
        for _ in 0..count {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).await.unwrap();
            let mut body = vec![0; u32::from_be_bytes(len) as usize];
            reader.read_exact(&mut body).await.unwrap();
            seen.extend_from_slice(&len);
            seen.extend_from_slice(&body);
        }
        seen
    }

    #[tokio::test]
    async fn packets_that_arrive_together_cost_one_read() {
        let wire = packets(&[28, 12, 3000, 20, 16, 12]);
        let mut reader = BurstReader::new(Socket {
            arrivals: VecDeque::from([wire.clone()]),
            reads: 0,
        });
        let seen = read_packets(&mut reader, 6).await;
        assert_eq!(seen, wire, "the bytes come out as they went in");
        assert_eq!(reader.inner.reads, 1, "twelve small reads, one socket read");
        assert_eq!(reader.buffered(), 0);
        assert_eq!(
            reader.pending.capacity(),
            0,
            "no buffer is kept between bursts"
        );
    }

    #[tokio::test]
    async fn a_packet_split_across_arrivals_is_put_back_together() {
        let wire = packets(&[100, 40, 7]);
        let (a, rest) = wire.split_at(2);
        let (b, c) = rest.split_at(70);
        let mut reader = BurstReader::new(Socket {
            arrivals: VecDeque::from([a.to_vec(), b.to_vec(), c.to_vec()]),
            reads: 0,
        });
        assert_eq!(read_packets(&mut reader, 3).await, wire);
        assert_eq!(reader.inner.reads, 3);
        assert_eq!(reader.pending.capacity(), 0);
    }

    #[tokio::test]
    async fn large_reads_go_straight_to_the_socket() {
        // More arrived than the read asks for: through the scratch buffer the rest would be
        // kept aside; straight from the socket it stays there.
        let wire: Vec<u8> = (0..DIRECT_READ * 3).map(|i| i as u8).collect();
        let mut reader = BurstReader::new(Socket {
            arrivals: VecDeque::from([wire.clone()]),
            reads: 0,
        });
        let mut big = vec![0; DIRECT_READ * 2];
        reader.read_exact(&mut big).await.unwrap();
        assert_eq!(big, wire[..DIRECT_READ * 2]);
        assert_eq!(reader.inner.reads, 1);
        assert_eq!(reader.pending.capacity(), 0, "nothing was copied aside");
        let mut rest = vec![0; DIRECT_READ];
        reader.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, wire[DIRECT_READ * 2..]);
    }

    #[tokio::test]
    async fn end_of_stream_comes_through_after_the_buffered_bytes() {
        let wire = packets(&[5]);
        let mut reader = BurstReader::new(Socket {
            arrivals: VecDeque::from([wire.clone()]),
            reads: 0,
        });
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, wire);
        let mut one = [0u8; 1];
        assert_eq!(reader.read(&mut one).await.unwrap(), 0, "EOF stays EOF");
    }
}
