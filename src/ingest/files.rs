//! File sources: where input bytes come from and how they are cut up among workers.
//!
//! A file (or the embedded demo) is cut into partitions of `input.partition_bytes` at line
//! boundaries; partition `k` is read by worker `k % workers`, in every process. Like a Kafka
//! partition, each has its own watermark, so which records are late does not depend on how many
//! workers read the file. Standard input is one partition, read by worker 0.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

/// Where samples are read from.
#[derive(Clone, Debug)]
pub enum InputSource {
    /// A JSON Lines file.
    Path(PathBuf),
    /// Standard input (`--input -`).
    Stdin,
    /// Bytes held in memory (the embedded demo scenario).
    Embedded { name: String, bytes: Arc<[u8]> },
    /// The samples topic (`--input kafka`): read by the Kafka feed, not in byte partitions.
    Kafka { topic: String },
    /// Prometheus remote write (`--input remote-write://HOST:PORT`): the receiver's queue, read
    /// by worker 0.
    RemoteWrite {
        /// The address the receiver listens on.
        addr: String,
        /// What it received.
        queue: Arc<crate::ingest::remote_write::RemoteWriteQueue>,
    },
}

impl InputSource {
    /// The name dead letters give as their source.
    pub fn name(&self) -> String {
        match self {
            InputSource::Path(p) => p.display().to_string(),
            InputSource::Stdin => "stdin".into(),
            InputSource::Embedded { name, .. } => name.clone(),
            InputSource::Kafka { topic } => format!("kafka:{topic}"),
            InputSource::RemoteWrite { addr, .. } => format!("remote-write://{addr}"),
        }
    }

    /// Opens the source positioned at byte `start`.
    fn open_at(&self, start: u64) -> io::Result<Box<dyn BufRead>> {
        Ok(match self {
            InputSource::Path(p) => {
                let mut f = File::open(p)?;
                f.seek(SeekFrom::Start(start))?;
                Box::new(BufReader::with_capacity(256 << 10, f))
            }
            InputSource::Stdin => Box::new(BufReader::with_capacity(256 << 10, io::stdin())),
            InputSource::Embedded { bytes, .. } => {
                let mut c = io::Cursor::new(bytes.clone());
                c.set_position(start);
                Box::new(c)
            }
            InputSource::Kafka { .. } | InputSource::RemoteWrite { .. } => {
                return Err(io::Error::other(
                    "a Kafka topic or remote write is not read as bytes",
                ))
            }
        })
    }
}

/// A line-aligned byte range of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Position in the partition list; worker `index % workers` reads it.
    pub index: usize,
    /// Byte offset of its first line.
    pub start: u64,
    /// Byte offset just past its last line (`u64::MAX` for standard input).
    pub end: u64,
    /// 1-based line number of its first line.
    pub first_line: u64,
}

impl Partition {
    /// Opens a reader over this partition's lines.
    pub fn open(&self, source: &InputSource, max_line_bytes: usize) -> io::Result<LineReader> {
        Ok(LineReader {
            inner: source.open_at(self.start)?,
            offset: self.start,
            end: self.end,
            next_line: self.first_line,
            max_line_bytes,
            drained: true,
        })
    }
}

/// Cuts `source` into partitions of about `partition_bytes`, each starting at a line start, with
/// the line number of its first line. One sequential pass that only counts newlines.
pub fn plan_partitions(source: &InputSource, partition_bytes: u64) -> io::Result<Vec<Partition>> {
    let len = match source {
        InputSource::Stdin => {
            return Ok(vec![Partition {
                index: 0,
                start: 0,
                end: u64::MAX,
                first_line: 1,
            }])
        }
        InputSource::Path(p) => std::fs::metadata(p)?.len(),
        InputSource::Embedded { bytes, .. } => bytes.len() as u64,
        InputSource::Kafka { .. } | InputSource::RemoteWrite { .. } => return Ok(Vec::new()),
    };
    let mut starts = vec![(0u64, 1u64)];
    let mut reader = source.open_at(0)?;
    let (mut base, mut newlines, mut next_boundary, mut seeking) =
        (0u64, 0u64, partition_bytes, false);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = read_full(&mut reader, &mut chunk)?;
        if n == 0 {
            break;
        }
        let data = &chunk[..n];
        let mut i = 0usize;
        while i < n {
            if seeking {
                match memchr::memchr(b'\n', &data[i..]) {
                    Some(j) => {
                        newlines += 1;
                        i += j + 1;
                        starts.push((base + i as u64, newlines + 1));
                        next_boundary += partition_bytes;
                        seeking = false;
                    }
                    None => i = n,
                }
            } else if next_boundary >= len {
                newlines += count_newlines(&data[i..]);
                i = n;
            } else {
                let seek_from = next_boundary - 1;
                if seek_from < base + i as u64 {
                    // A line longer than a partition: the boundary falls inside it.
                    next_boundary += partition_bytes;
                } else if seek_from >= base + n as u64 {
                    newlines += count_newlines(&data[i..]);
                    i = n;
                } else {
                    let stop = (seek_from - base) as usize;
                    newlines += count_newlines(&data[i..stop]);
                    i = stop;
                    seeking = true;
                }
            }
        }
        base += n as u64;
    }
    let mut partitions = Vec::with_capacity(starts.len());
    for (k, &(start, first_line)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(len, |s| s.0);
        if start < end {
            partitions.push(Partition {
                index: partitions.len(),
                start,
                end,
                first_line,
            });
        }
    }
    Ok(partitions)
}

fn read_full(reader: &mut dyn BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Where a line was and whether it was cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// 1-based line number.
    pub number: u64,
    /// The line is longer than the limit; only its first `max_line_bytes` bytes were kept.
    pub oversized: bool,
}

/// Reads the lines of one partition, never holding more than `max_line_bytes` of a line.
pub struct LineReader {
    inner: Box<dyn BufRead>,
    offset: u64,
    end: u64,
    next_line: u64,
    max_line_bytes: usize,
    drained: bool,
}

impl LineReader {
    /// True when everything read so far has been handed out: the next line needs another read,
    /// which may block on a pipe.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Reads the next line into `line` (without `\n` or a trailing `\r`); None at the partition's end.
    pub fn next_line(&mut self, line: &mut Vec<u8>) -> io::Result<Option<LineInfo>> {
        line.clear();
        if self.offset >= self.end {
            return Ok(None);
        }
        let info = LineInfo {
            offset: self.offset,
            number: self.next_line,
            oversized: false,
        };
        let mut oversized = false;
        let mut consumed_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !consumed_any {
                    return Ok(None);
                }
                break;
            }
            consumed_any = true;
            let (take, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            let room = self.max_line_bytes.saturating_sub(line.len());
            if take > room {
                oversized = true;
            }
            line.extend_from_slice(&available[..take.min(room)]);
            let used = if done { take + 1 } else { take };
            self.drained = used == available.len();
            self.inner.consume(used);
            self.offset += used as u64;
            if done {
                break;
            }
        }
        self.next_line += 1;
        if line.last() == Some(&b'\r') && !oversized {
            line.pop();
        }
        Ok(Some(LineInfo { oversized, ..info }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded(text: &str) -> InputSource {
        InputSource::Embedded {
            name: "t".into(),
            bytes: Arc::from(text.as_bytes()),
        }
    }

    fn all_lines(source: &InputSource, partitions: &[Partition]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for p in partitions {
            let mut r = p.open(source, 1 << 20).unwrap();
            let mut buf = Vec::new();
            while let Some(info) = r.next_line(&mut buf).unwrap() {
                out.push((info.number, String::from_utf8(buf.clone()).unwrap()));
            }
        }
        out
    }

    #[test]
    fn partitions_cover_every_line_once_with_its_number() {
        let text: String = (1..=500)
            .map(|i| format!("line {i} {}\n", "x".repeat(i % 37)))
            .collect();
        let source = embedded(&text);
        for size in [4096, 100, 7, 1] {
            let parts = plan_partitions(&source, size).unwrap();
            let lines = all_lines(&source, &parts);
            assert_eq!(lines.len(), 500, "size {size}");
            for (i, (number, line)) in lines.iter().enumerate() {
                assert_eq!(*number, i as u64 + 1);
                assert!(line.starts_with(&format!("line {} ", i + 1)), "{line}");
            }
        }
        assert!(plan_partitions(&source, 100).unwrap().len() > 50);
    }

    #[test]
    fn long_lines_are_cut_and_flagged_and_crlf_is_stripped() {
        let text = format!("short\r\n{}\nlast", "y".repeat(1000));
        let source = embedded(&text);
        let parts = plan_partitions(&source, 4096).unwrap();
        let mut r = parts[0].open(&source, 300).unwrap();
        let mut buf = Vec::new();
        assert!(!r.next_line(&mut buf).unwrap().unwrap().oversized);
        assert_eq!(buf, b"short");
        let info = r.next_line(&mut buf).unwrap().unwrap();
        assert!(info.oversized && buf.len() == 300 && info.number == 2);
        let info = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!((info.number, buf.as_slice()), (3, &b"last"[..]));
        assert!(r.next_line(&mut buf).unwrap().is_none());
    }
}
