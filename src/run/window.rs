//! A replay's window: `--from-time` / `--from-offsets` (where it starts) and `--until` (where it
//! ends: a time, or offsets whose records' earliest time is the end).

use crate::cli::RunArgs;
use crate::error::JobError;
use crate::kafka::KafkaClient;

/// The replay window from --from-time / --from-offsets and --until.
pub fn replay_window(
    args: &RunArgs,
    client: &KafkaClient,
) -> Result<(Option<u64>, Option<u64>), JobError> {
    let time = |flag: &str, text: &str| {
        incidentflow_dataflows::time::parse_rfc3339(text).map_err(|e| {
            JobError::Usage(format!(
                "{flag} {text}: {e:?} (use RFC 3339, e.g. 2026-11-23T01:00:00Z)"
            ))
        })
    };
    let mut from = match &args.from_time {
        Some(t) => Some(time("--from-time", t)?),
        None => None,
    };
    if let Some(list) = &args.from_offsets {
        let offsets = parse_offsets(list).map_err(|item| {
            JobError::Usage(format!(
                "--from-offsets: {item:?} is not topic:partition:offset"
            ))
        })?;
        from = Some(earliest_time_at(&offsets, client)?);
    }
    // --until takes a time, or offsets: the earliest time of the records at them.
    let until = match &args.until {
        Some(text) => match parse_offsets(text) {
            Ok(offsets) => Some(earliest_time_at(&offsets, client)?),
            Err(_) => Some(time("--until", text)?),
        },
        None => None,
    };
    if let (Some(f), Some(u)) = (from, until) {
        if f >= u {
            return Err(JobError::Usage(
                "--until must be later than the replay's start".into(),
            ));
        }
    }
    if (from.is_some() || until.is_some()) && args.checkpoint.is_some() {
        return Err(JobError::Usage(
            "a replay (--from-time, --from-offsets, --until) does not take --checkpoint".into(),
        ));
    }
    Ok((from, until))
}

/// `topic:partition:offset,...` as a list; the item that is not, as the error.
fn parse_offsets(list: &str) -> Result<Vec<(String, i32, i64)>, String> {
    let mut offsets = Vec::new();
    for item in list.split(',').filter(|s| !s.trim().is_empty()) {
        let mut parts = item.trim().rsplitn(3, ':');
        let offset = parts.next().and_then(|o| o.parse::<i64>().ok());
        let partition = parts.next().and_then(|p| p.parse::<i32>().ok());
        match (parts.next(), partition, offset) {
            (Some(topic), Some(p), Some(o)) if !topic.is_empty() && o >= 0 => {
                offsets.push((topic.to_owned(), p, o))
            }
            _ => return Err(item.to_owned()),
        }
    }
    if offsets.is_empty() {
        return Err(list.to_owned());
    }
    Ok(offsets)
}

/// The earliest event time of the records at `offsets` (each message's first sample).
fn earliest_time_at(offsets: &[(String, i32, i64)], client: &KafkaClient) -> Result<u64, JobError> {
    let mut earliest = u64::MAX;
    for (topic, partition, offset) in offsets {
        earliest = earliest.min(crate::ingest::kafka::timestamp_at(
            client, topic, *partition, *offset,
        )?);
    }
    Ok(earliest)
}

#[cfg(test)]
mod tests {
    use super::parse_offsets;

    #[test]
    fn offsets_lists_parse_and_times_are_not_taken_for_them() {
        assert_eq!(
            parse_offsets("raw.metrics:0:10, raw.metrics:3:0"),
            Ok(vec![
                ("raw.metrics".to_string(), 0, 10),
                ("raw.metrics".to_string(), 3, 0)
            ])
        );
        // A topic name may hold colons; the last two parts are the partition and offset.
        assert_eq!(
            parse_offsets("a:b:1:2"),
            Ok(vec![("a:b".to_string(), 1, 2)])
        );
        assert!(parse_offsets("2026-11-23T01:00:00Z").is_err());
        assert!(parse_offsets("raw.metrics:0:-1").is_err());
        assert!(parse_offsets("raw.metrics:0").is_err());
        assert!(parse_offsets("").is_err());
    }
}
