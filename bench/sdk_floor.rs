//! The AWS SDK for Rust alone, with ssm-injector's SDK configuration
//! (`source::config::load_config`: the same HTTP client, timeouts and credential chain) and
//! nothing else of ssm-injector: the floor the benchmarks compare ssm-injector with.
//!
//! - `sdk_floor CALLS NAME...`: CALLS sequential `GetParameters` of up to 10 of the NAMES
//!   each, without decryption, as an idle sidecar's version check makes them; prints the
//!   CPU milliseconds per call (the process's user + system time from `/proc/self/stat`,
//!   over the timed calls only, after one warm-up call per batch). `bench/watch_bench.py`
//!   prints it next to the sidecar's CPU per idle poll.
//! - `sdk_floor --render OUT --names NAME...` or `--render OUT --path PATH`: a one-shot
//!   render from process start, as `render` makes it (GetParameters of 10 names in
//!   sequence, or GetParametersByPath following NextToken, with decryption), the values
//!   written to OUT as `Vn='value'` lines; `bench/render_bench.py` times it as the
//!   `sdk-floor` tool.
//!
//!     cargo build --release --example sdk_floor

use std::error::Error;
use std::io::Write;

const USAGE: &str = "usage: sdk_floor CALLS NAME... | --render OUT (--names NAME... | --path PATH)";

/// The process's CPU time (user + system), seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Result<f64, Box<dyn Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').ok_or("no ) in /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11).ok_or("short stat")?.parse::<u64>()?
        + fields.get(12).ok_or("short stat")?.parse::<u64>()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every architecture it runs on.
    Ok(ticks as f64 / 100.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = ssm_injector::source::config::load_config(None).await?;
    let client = aws_sdk_ssm::Client::new(&config);
    match args.first().map(String::as_str) {
        Some("--render") => render(&client, &args[1..]).await,
        Some(calls) => {
            let calls: usize = calls.parse().map_err(|_| USAGE)?;
            version_checks(&client, calls, &args[1..]).await
        }
        None => Err(USAGE.into()),
    }
}

/// CALLS version checks; prints the CPU milliseconds per call.
async fn version_checks(
    client: &aws_sdk_ssm::Client,
    calls: usize,
    names: &[String],
) -> Result<(), Box<dyn Error>> {
    if names.is_empty() || calls == 0 {
        return Err(USAGE.into());
    }
    let batches: Vec<Vec<String>> = names.chunks(10).map(<[String]>::to_vec).collect();
    let check = |batch: &Vec<String>| {
        client
            .get_parameters()
            .set_names(Some(batch.clone()))
            .with_decryption(false)
            .send()
    };
    for batch in &batches {
        check(batch).await?;
    }
    let start = cpu_seconds()?;
    for i in 0..calls {
        check(&batches[i % batches.len()]).await?;
    }
    let cpu = cpu_seconds()? - start;
    println!("{:.3}", cpu * 1000.0 / calls as f64);
    Ok(())
}

/// One render from process start: the values, decrypted, to `Vn='value'` lines in OUT.
async fn render(client: &aws_sdk_ssm::Client, args: &[String]) -> Result<(), Box<dyn Error>> {
    let (out, spec) = args.split_first().ok_or(USAGE)?;
    let mut values = Vec::new();
    match spec.split_first() {
        Some((flag, names)) if flag == "--names" => {
            for batch in names.chunks(10) {
                let answer = client
                    .get_parameters()
                    .set_names(Some(batch.to_vec()))
                    .with_decryption(true)
                    .send()
                    .await?;
                values.extend(answer.parameters().iter().filter_map(|p| p.value.clone()));
            }
        }
        Some((flag, path)) if flag == "--path" => {
            let path = path.first().ok_or(USAGE)?;
            let mut pages = client
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .with_decryption(true)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                values.extend(page?.parameters().iter().filter_map(|p| p.value.clone()));
            }
        }
        _ => return Err(USAGE.into()),
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for (i, value) in values.iter().enumerate() {
        writeln!(file, "V{i}='{}'", value.replace('\'', "'\\''"))?;
    }
    file.flush()?;
    Ok(())
}
