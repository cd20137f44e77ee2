//! The gateway's resources over the soak: `VmRSS`, threads and open file descriptors from
//! `/proc/PID`, live tasks and requests in flight from its `/metrics`.

use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::stats::slope;

/// One reading of the gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Seconds since the load started.
    pub(crate) t_s: f64,
    pub(crate) rss_kb: u64,
    /// Open descriptors, sockets included.
    pub(crate) fds: u64,
    /// Of those, sockets: they come and go with connections.
    pub(crate) sockets: u64,
    pub(crate) threads: u64,
    /// `portico_runtime_alive_tasks`; `None` when the gateway does not export it.
    pub(crate) tasks: Option<i64>,
    /// `portico_requests_in_flight`.
    pub(crate) in_flight: Option<i64>,
    /// `portico_background_tasks`.
    pub(crate) background: Option<i64>,
    /// Requests the soak had in flight at the time.
    pub(crate) client_in_flight: u64,
    /// The machine's one-minute load average (it is shared).
    pub(crate) load1: f64,
}

/// Reads `/proc/PID` and scrapes `metrics_url`.
pub(crate) async fn take(
    pid: u32,
    client: &reqwest::Client,
    metrics_url: &str,
    started: Instant,
    client_in_flight: u64,
) -> anyhow::Result<Sample> {
    let t_s = super::load::secs_since(started);
    let (rss_kb, threads) = read_status(pid)?;
    let (fds, sockets) = count_fds(pid)?;
    let text = match client.get(metrics_url).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    Ok(Sample {
        t_s,
        rss_kb,
        fds,
        sockets,
        threads,
        tasks: gauge(&text, "portico_runtime_alive_tasks"),
        in_flight: gauge(&text, "portico_requests_in_flight"),
        background: gauge(&text, "portico_background_tasks"),
        client_in_flight,
        load1: load_average().map_or(0.0, |l| l[0]),
    })
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages.
pub(crate) fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<f64>().ok());
    Some([parts.next()??, parts.next()??, parts.next()??])
}

/// The entries of `/proc/PID/fd`, and how many of them are sockets.
fn count_fds(pid: u32) -> anyhow::Result<(u64, u64)> {
    let dir = format!("/proc/{pid}/fd");
    let (mut fds, mut sockets) = (0, 0);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let Ok(entry) = entry else { continue };
        fds += 1;
        // A descriptor closed since the listing has no link any more: not a socket.
        if std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        {
            sockets += 1;
        }
    }
    Ok((fds, sockets))
}

/// `VmRSS` (KiB) and `Threads` of `/proc/PID/status`.
fn read_status(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text)
}

fn parse_status(text: &str) -> anyhow::Result<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    match (field("VmRSS:"), field("Threads:")) {
        (Some(rss), Some(threads)) => Ok((rss, threads)),
        _ => bail!("no VmRSS/Threads in /proc status (has the gateway exited?)"),
    }
}

/// The value of an unlabelled gauge in Prometheus text.
fn gauge(text: &str, name: &str) -> Option<i64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().map(|v| v as i64)
    })
}

/// How one resource moved over the measured part of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Trend {
    /// Mean over the first quarter of the samples after the warm-up.
    pub(crate) first_mean: f64,
    /// Mean over the last quarter.
    pub(crate) last_mean: f64,
    pub(crate) max: f64,
    /// Least-squares slope over every sample after the warm-up, per minute.
    pub(crate) slope_per_min: f64,
    /// Samples the trend is made of.
    pub(crate) samples: usize,
}

impl Trend {
    /// The trend of `value` over the samples taken at or after `warmup_s`; `None` with
    /// fewer than 4 such samples or when the value is missing.
    pub(crate) fn of(
        samples: &[Sample],
        warmup_s: f64,
        value: impl Fn(&Sample) -> Option<f64>,
    ) -> Option<Trend> {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.t_s >= warmup_s)
            .map(|s| Some((s.t_s / 60.0, value(s)?)))
            .collect::<Option<_>>()?;
        if points.len() < 4 {
            return None;
        }
        let quarter = points.len() / 4;
        let mean = |part: &[(f64, f64)]| part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64;
        Some(Trend {
            first_mean: mean(&points[..quarter]),
            last_mean: mean(&points[points.len() - quarter..]),
            max: points.iter().map(|p| p.1).fold(f64::MIN, f64::max),
            slope_per_min: slope(&points),
            samples: points.len(),
        })
    }

    /// Last quarter's mean minus the first's.
    pub(crate) fn growth(&self) -> f64 {
        self.last_mean - self.first_mean
    }

    /// True when the growth is above both `abs` and `pct` percent of the first quarter.
    pub(crate) fn grew_beyond(&self, abs: f64, pct: f64) -> bool {
        let growth = self.growth();
        growth > abs && growth > self.first_mean.abs() * pct / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, rss_kb: u64) -> Sample {
        Sample {
            t_s,
            rss_kb,
            fds: 20,
            sockets: 5,
            threads: 3,
            tasks: Some(10),
            in_flight: Some(1),
            background: Some(0),
            client_in_flight: 1,
            load1: 0.5,
        }
    }

    #[test]
    fn status_and_gauges_are_parsed() {
        let status = "Name:\tportico\nVmRSS:\t   18000 kB\nThreads:\t4\n";
        assert_eq!(parse_status(status).unwrap(), (18000, 4));
        assert!(parse_status("Name:\tx\n").is_err());
        let text = "# HELP portico_runtime_alive_tasks x\n# TYPE portico_runtime_alive_tasks gauge\nportico_runtime_alive_tasks 17\nportico_requests_in_flight 3\n";
        assert_eq!(gauge(text, "portico_runtime_alive_tasks"), Some(17));
        assert_eq!(gauge(text, "portico_requests_in_flight"), Some(3));
        assert_eq!(gauge(text, "portico_background_tasks"), None);
        let (rss, threads) = read_status(std::process::id()).unwrap();
        assert!(rss > 0 && threads > 0);
        assert!(load_average().is_some());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (fds, sockets) = count_fds(std::process::id()).unwrap();
        assert!(
            sockets >= 1 && fds > sockets,
            "{fds} fds, {sockets} sockets"
        );
        drop(listener);
    }

    #[test]
    fn a_trend_compares_the_quarters_after_the_warmup() {
        // 0..=19 at 10 s steps; warm-up 30 s leaves 17 samples, quarters of 4.
        let samples: Vec<Sample> = (0..20)
            .map(|i| sample(f64::from(i) * 10.0, 1000 + 60 * u64::from(i as u32)))
            .collect();
        let trend = Trend::of(&samples, 30.0, |s| Some(s.rss_kb as f64)).unwrap();
        assert_eq!(trend.samples, 17);
        // Samples 3..=6 and 16..=19.
        assert!((trend.first_mean - (1000.0 + 60.0 * 4.5)).abs() < 1e-9);
        assert!((trend.last_mean - (1000.0 + 60.0 * 17.5)).abs() < 1e-9);
        assert!((trend.slope_per_min - 360.0).abs() < 1e-9);
        assert!(trend.grew_beyond(100.0, 10.0));
        assert!(!trend.grew_beyond(1000.0, 10.0));
        let flat: Vec<Sample> = (0..20).map(|i| sample(f64::from(i), 5000)).collect();
        let trend = Trend::of(&flat, 0.0, |s| Some(s.rss_kb as f64)).unwrap();
        assert_eq!(trend.growth(), 0.0);
        assert!(Trend::of(&flat[..3], 0.0, |s| Some(s.rss_kb as f64)).is_none());
        assert!(Trend::of(&flat, 0.0, |_| None).is_none());
    }
}
