//! segd-gen: seeded, realistic CDP data at any size, for loading, load tests and the
//! side-by-side comparison. Every output is a pure function of `--seed` and `--now-ms`
//! (the generator is `segd::demo::DemoGenerator`), so two runs with the same flags
//! write the same bytes whatever the thread count.
//!
//! ```text
//! segd-gen profiles --count 1000000 --format csv   > profiles.csv
//! segd-gen profiles --count 1000000 --format ndjson > identify.ndjson
//! segd-gen events   --count 100000 --events-per-profile 20 --format ndjson > events.ndjson
//! segd-gen profiles --count 100000 --format batch   > batches.ndjson   # one /v1/batch body per line
//! segd-gen segments --count 100 > segments.json
//! ```
//!
//! Profiles are `user-<index>` for index `start..start+count`. Events are grouped by
//! blocks of 4,096 profiles and, inside a block, ordered by time (a realistic interleaved
//! stream without holding the whole stream in memory); each profile's event count is the
//! mean times its Zipf-like activity weight.

use clap::{Parser, Subcommand, ValueEnum};
use rayon::prelude::*;
use segd::bulk::{
    csv_header, csv_row, event_message, events_wanted, identify_message, segment_suite,
};
use segd::demo::{DemoGenerator, DEFAULT_NOW_MS};
use serde_json::Value;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Profiles generated per parallel block.
const BLOCK_PROFILES: u64 = 4_096;
/// Blocks generated before they are written in order (bounds memory to a few MiB per
/// block whatever the total size).
const BLOCKS_IN_FLIGHT: usize = 16;
/// Messages per `/v1/batch` body.
const BATCH_MESSAGES: usize = 100;
/// Largest suite (the engine's segment limit).
const MAX_SUITE_SEGMENTS: usize = 10_000;

#[derive(Parser)]
#[command(name = "segd-gen", about = "Seeded realistic CDP data for segd")]
struct Arguments {
    /// Random seed; the same seed gives the same data.
    #[arg(long, default_value_t = 42, global = true)]
    seed: u64,
    /// Reference time (epoch ms) for ages, sign-ups and event times.
    #[arg(long, default_value_t = DEFAULT_NOW_MS, global = true)]
    now_ms: i64,
    /// Output file (default: standard output).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One Segment message per line.
    Ndjson,
    /// One `/v1/batch` body of 100 messages per line.
    Batch,
    /// One profile per line with 16 typed traits (profiles only).
    Csv,
}

#[derive(Subcommand)]
enum Command {
    /// Profiles as `identify` messages, batch bodies or CSV.
    Profiles {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long, value_enum, default_value = "ndjson")]
        format: Format,
    },
    /// Event streams (`track` / `page` messages) of profiles `start..start+count`.
    Events {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Mean events per profile (scaled per profile by its activity weight).
        #[arg(long, default_value_t = 20)]
        events_per_profile: usize,
        #[arg(long, value_enum, default_value = "ndjson")]
        format: Format,
    },
    /// A segment-rule suite as a JSON array of `{"name", "kind", "rule"}` (rule = AST).
    Segments {
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let output: Box<dyn Write> = match &arguments.out {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Box::new(file),
            Err(error) => {
                eprintln!("segd-gen: cannot create {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::stdout().lock()),
    };
    let mut output = BufWriter::with_capacity(1 << 20, output);
    let generator = DemoGenerator::with_now_ms(arguments.seed, arguments.now_ms);
    let result = match arguments.command {
        Command::Profiles {
            count,
            start,
            format,
        } => write_profiles(&generator, start, count, format, &mut output),
        Command::Events {
            count,
            start,
            events_per_profile,
            format,
        } => {
            if format == Format::Csv {
                eprintln!("segd-gen: events have no CSV form; use --format ndjson or batch");
                return ExitCode::from(2);
            }
            write_events(
                &generator,
                start,
                count,
                events_per_profile,
                format,
                &mut output,
            )
        }
        Command::Segments { count } => {
            if count > MAX_SUITE_SEGMENTS {
                eprintln!("segd-gen: at most {MAX_SUITE_SEGMENTS} segments (the engine's limit)");
                return ExitCode::from(2);
            }
            let suite = segment_suite(arguments.seed, count);
            serde_json::to_writer_pretty(&mut output, &suite)
                .map_err(std::io::Error::other)
                .and_then(|()| output.write_all(b"\n"))
        }
    };
    match result.and_then(|()| output.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("segd-gen: writing failed: {error}");
            ExitCode::from(1)
        }
    }
}

/// Generates blocks of profiles in parallel and writes them in order.
fn write_blocks(
    start: u64,
    count: u64,
    output: &mut impl Write,
    block: impl Fn(u64, u64) -> Vec<u8> + Sync,
) -> std::io::Result<()> {
    let end = start.saturating_add(count);
    let starts: Vec<u64> = (start..end).step_by(BLOCK_PROFILES as usize).collect();
    for window in starts.chunks(BLOCKS_IN_FLIGHT) {
        let blocks: Vec<Vec<u8>> = window
            .par_iter()
            .map(|&first| block(first, (first + BLOCK_PROFILES).min(end)))
            .collect();
        for bytes in blocks {
            output.write_all(&bytes)?;
        }
    }
    Ok(())
}

/// Writes messages as NDJSON or as batch bodies of [`BATCH_MESSAGES`].
fn push_messages(messages: Vec<Value>, format: Format, bytes: &mut Vec<u8>) {
    match format {
        Format::Batch => {
            for chunk in messages.chunks(BATCH_MESSAGES) {
                let body = serde_json::json!({ "batch": chunk });
                serde_json::to_writer(&mut *bytes, &body).expect("JSON values serialize");
                bytes.push(b'\n');
            }
        }
        _ => {
            for message in messages {
                serde_json::to_writer(&mut *bytes, &message).expect("JSON values serialize");
                bytes.push(b'\n');
            }
        }
    }
}

fn write_profiles(
    generator: &DemoGenerator,
    start: u64,
    count: u64,
    format: Format,
    output: &mut impl Write,
) -> std::io::Result<()> {
    if format == Format::Csv {
        output.write_all(csv_header().as_bytes())?;
        output.write_all(b"\n")?;
    }
    write_blocks(start, count, output, |first, end| {
        let mut bytes = Vec::with_capacity(((end - first) * 400) as usize);
        if format == Format::Csv {
            let mut line = String::with_capacity(512);
            for index in first..end {
                line.clear();
                csv_row(&generator.profile(index), &mut line);
                line.push('\n');
                bytes.extend_from_slice(line.as_bytes());
            }
        } else {
            let messages = (first..end)
                .map(|index| identify_message(generator, index, generator.profile(index)))
                .collect();
            push_messages(messages, format, &mut bytes);
        }
        bytes
    })
}

fn write_events(
    generator: &DemoGenerator,
    start: u64,
    count: u64,
    events_per_profile: usize,
    format: Format,
    output: &mut impl Write,
) -> std::io::Result<()> {
    write_blocks(start, count, output, |first, end| {
        let mut timed: Vec<(i64, Value)> = Vec::new();
        for index in first..end {
            let wanted = events_wanted(generator, index, events_per_profile);
            for (number, event) in generator.events(index, wanted).into_iter().enumerate() {
                let time_ms = event.time_ms;
                timed.push((time_ms, event_message(generator, index, number, event)));
            }
        }
        // Stable: one profile's events keep their order at equal times.
        timed.sort_by_key(|(time_ms, _)| *time_ms);
        let mut bytes = Vec::with_capacity(timed.len() * 300);
        push_messages(
            timed.into_iter().map(|(_, message)| message).collect(),
            format,
            &mut bytes,
        );
        bytes
    })
}
