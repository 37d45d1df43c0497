//! Real servers the tests start on 127.0.0.1 and stop on drop: moto's S3
//! and Debian's Prometheus; and a plain HTTP GET to ask them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port of 127.0.0.1 free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` from 127.0.0.1:`port`: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut r = agent
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// The value of the sample `name` (with its labels, as written) in
/// `/metrics` text; 0 when absent.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// moto's S3 server (`moto[server]` from PyPI) on a free port of
/// 127.0.0.1 with one bucket, stopped on drop.
pub struct MotoS3 {
    child: Child,
    pub endpoint: String,
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoS3 {
    /// Starts the server and creates `bucket` (credentials: any).
    pub fn start(bucket: &str) -> MotoS3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (scripts/setup installs moto[server])");
        let s3 = MotoS3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        s3.boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
        s3
    }

    /// Runs a boto3 snippet against the server (`s3` is the client);
    /// returns its stdout.
    pub fn boto(&self, code: &str) -> String {
        let script = format!(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{code}",
            self.endpoint
        );
        let o = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `cmd` pointed at the server with test credentials.
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
    }
}

/// Debian's `prometheus` server on a free port of 127.0.0.1, scraping
/// `targets` every second, its data in a temporary folder; stopped on drop.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub fn start(targets: &[String]) -> Prometheus {
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("prometheus.yml");
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: credtrail\n    static_configs:\n      - targets: [{list}]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (scripts/setup installs Debian's prometheus)");
        let p = Prometheus {
            child,
            port,
            _data: data,
        };
        let t0 = Instant::now();
        while !matches!(http_get(port, "/-/ready"), Ok((200, _))) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "prometheus did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// An instant query through the HTTP API: each result's labels and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let (status, body) = http_get(
            self.port,
            &format!(
                "/api/v1/query?query={}",
                percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC)
            ),
        )
        .unwrap();
        assert_eq!(status, 200, "{promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// Waits until Prometheus has scraped `target` successfully after `since`.
    pub fn wait_scraped_after(&self, since: std::time::SystemTime) {
        let t0 = Instant::now();
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        loop {
            let (_, body) = http_get(self.port, "/api/v1/targets").unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let done = v["data"]["activeTargets"].as_array().is_some_and(|ts| {
                !ts.is_empty()
                    && ts.iter().all(|t| {
                        t["health"] == "up"
                            && t["lastScrape"]
                                .as_str()
                                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                                .is_some_and(|t| t.timestamp_micros() as f64 / 1e6 > since)
                    })
            });
            if done {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no scrape: {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
