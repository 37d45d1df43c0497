//! A segment file read by position (`pread`), for Parquet readers on
//! several threads at once: `std::fs::File`'s reader seeks a file offset
//! its clones share (parquet's own docs warn of the race), and dups the
//! descriptor on every read. One handle, opened and checked once, serves
//! every part of a segment.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use parquet::errors::{ParquetError, Result};
use parquet::file::reader::{ChunkReader, Length};

/// An open file read only at explicit positions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Positional {
    file: Arc<File>,
    len: u64,
}

impl Positional {
    pub fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Positional {
            file: Arc::new(file),
            len,
        })
    }
}

impl Length for Positional {
    fn len(&self) -> u64 {
        self.len
    }
}

/// Reads on from a position, moving only its own cursor.
pub struct At {
    file: Arc<File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl ChunkReader for Positional {
    type T = BufReader<At>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(BufReader::new(At {
            file: Arc::clone(&self.file),
            pos: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        // The length comes from a footer the bounds check has read; the
        // file's own size bounds it anyway.
        if start.saturating_add(length as u64) > self.len {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at {start} run past the file's end ({})",
                self.len
            )));
        }
        let mut buf = vec![0; length];
        self.file.read_exact_at(&mut buf, start)?;
        Ok(buf.into())
    }
}
