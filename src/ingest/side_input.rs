//! Side inputs: JSON Lines that the job reads beside its samples and that change what it tells
//! people, not what it computes (responder feedback labels, silences). From a file or a Kafka
//! topic: read to its end before the job starts (so a replay sees what the live run had), then
//! followed from a thread of its own (a file's appended lines, a topic's new messages) and handed
//! over line by line with its position (`file:line`, `topic[partition]@offset`).

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::JobError;
use crate::kafka::KafkaClient;

/// Where a side input comes from.
pub enum SideSource {
    /// A JSON Lines file.
    File(PathBuf),
    /// A Kafka topic (all its partitions), on these brokers.
    Topic { client: KafkaClient, topic: String },
}

/// How often a followed source is looked at again.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Reads `source` to its end, handing each non-empty line to `on_line` with its position, then
/// follows it on a thread named `what` for as long as the process runs.
pub fn follow(
    what: &'static str,
    source: SideSource,
    mut on_line: impl FnMut(&[u8], &str) + Send + 'static,
) -> Result<(), JobError> {
    match source {
        SideSource::File(path) => {
            let name = path.display().to_string();
            let error = |source| JobError::Input {
                what,
                name: name.clone(),
                source,
            };
            let mut file = std::fs::File::open(&path).map_err(error)?;
            let (mut at, mut line_no) = (0u64, 0usize);
            read_new_lines(&mut file, &name, &mut at, &mut line_no, &mut on_line).map_err(error)?;
            spawn(what, move || loop {
                std::thread::sleep(FOLLOW_EVERY);
                if let Err(e) =
                    read_new_lines(&mut file, &name, &mut at, &mut line_no, &mut on_line)
                {
                    tracing::warn!(what, file = %name, "cannot read on: {e}");
                }
            })
        }
        SideSource::Topic { client, topic } => {
            let read = crate::ingest::kafka::read_to_end(&client, &topic)?;
            for m in &read.messages {
                lines_of(&m.payload, &topic, m.partition, m.offset, &mut on_line);
            }
            let follower =
                crate::ingest::kafka::EventFollower::open(&client, &[(topic.clone(), read.ends)])?;
            spawn(what, move || loop {
                follower
                    .drain(|m| lines_of(m.payload, &topic, m.partition, m.offset, &mut on_line));
                std::thread::sleep(FOLLOW_EVERY);
            })
        }
    }
}

fn spawn(what: &'static str, body: impl FnOnce() + Send + 'static) -> Result<(), JobError> {
    std::thread::Builder::new()
        .name(what.into())
        .spawn(body)
        .map(|_| ())
        .map_err(|e| JobError::Startup(format!("cannot start the {what} reader: {e}")))
}

/// Hands over the complete lines after `at` (a line still being written waits for its newline).
fn read_new_lines(
    file: &mut std::fs::File,
    name: &str,
    at: &mut u64,
    line_no: &mut usize,
    on_line: &mut impl FnMut(&[u8], &str),
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(*at))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        *at += n as u64;
        *line_no += 1;
        if !line.iter().all(u8::is_ascii_whitespace) {
            on_line(line.trim_ascii_end(), &format!("{name}:{line_no}"));
        }
    }
}

fn lines_of(
    payload: &[u8],
    topic: &str,
    partition: i32,
    offset: i64,
    on_line: &mut impl FnMut(&[u8], &str),
) {
    for (_, line) in incidentflow_dataflows::decode::json_lines(payload) {
        on_line(
            line.trim_ascii_end(),
            &format!("{topic}[{partition}]@{offset}"),
        );
    }
}
