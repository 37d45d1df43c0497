//! Reading the kernel's ring buffer: a reader of the map, bounded
//! batches, and how full it is.

use std::time::Duration;

use libbpf_rs::{MapHandle, RingBuffer, RingBufferBuilder};

use crate::BpfError;

/// A ring buffer reader of `map` ([`Tracer::ring_map`]) calling
/// `on_record` with each raw record.
pub fn ring_buffer_of<'cb, F>(
    map: &'cb MapHandle,
    on_record: F,
) -> Result<RingBuffer<'cb>, BpfError>
where
    F: FnMut(&[u8]) -> i32 + 'cb,
{
    let mut b = RingBufferBuilder::new();
    b.add(map, on_record).map_err(|source| BpfError::Map {
        map: "events",
        source,
    })?;
    b.build().map_err(|source| BpfError::Map {
        map: "events",
        source,
    })
}

/// Bytes the ring holds not yet consumed, and its size: how close the
/// kernel is to counting `ringbuf_full` losses.
pub fn ring_fill(rb: &RingBuffer<'_>) -> (u64, u64) {
    use libbpf_rs::AsRawLibbpf as _;
    let rb = rb.as_libbpf_object().as_ptr();
    // SAFETY: ring 0 of a ring buffer manager we hold (one map was added);
    // both calls only read its positions.
    unsafe {
        let ring = libbpf_rs::libbpf_sys::ring_buffer__ring(rb, 0);
        if ring.is_null() {
            return (0, 0);
        }
        (
            libbpf_rs::libbpf_sys::ring__avail_data_size(ring) as u64,
            libbpf_rs::libbpf_sys::ring__size(ring) as u64,
        )
    }
}

/// Consumes at most `max` records, waiting up to `timeout` for the first
/// if none is ready; returns how many were consumed. Bounded batches keep
/// the consumer's memory flat and its bookkeeping (checkpoints, rotation)
/// on time under a storm, where `ring_buffer__poll` would keep consuming
/// for as long as producers keep up. An interrupted wait is not an error.
pub fn poll_batch(rb: &RingBuffer<'_>, max: usize, timeout: Duration) -> Result<usize, BpfError> {
    let consume = || match rb.consume_raw_n(max) {
        n if n >= 0 => Ok(n as usize),
        n => Err(BpfError::Map {
            map: "events",
            source: libbpf_rs::Error::from_raw_os_error(-n),
        }),
    };
    let n = consume()?;
    if n > 0 || timeout.is_zero() {
        return Ok(n);
    }
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: epoll_wait on libbpf's own epoll fd, writing one event into
    // a local we own.
    let r = unsafe {
        libc::epoll_wait(
            rb.epoll_fd(),
            &mut ev,
            1,
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(BpfError::Map {
                map: "events",
                source: libbpf_rs::Error::from(e),
            });
        }
    }
    consume()
}
