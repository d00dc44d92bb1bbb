//! The AWS emulator: moto server from the project's venv, on loopback, or whatever
//! `AWS_ENDPOINT_URL` already points at.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use tokio::process::{Child, Command};

pub struct Emulator {
    pub endpoint: String,
    /// `None` when attached to an emulator someone else runs.
    _child: Option<Child>,
}

impl Emulator {
    /// Attaches to `AWS_ENDPOINT_URL` if set, else starts moto on `port` (0 picks a free one).
    pub async fn start_or_attach(port: u16, log: Option<PathBuf>) -> Result<Self> {
        match std::env::var("AWS_ENDPOINT_URL") {
            Ok(url) if !url.is_empty() => Ok(Self { endpoint: url.trim_end_matches('/').to_owned(), _child: None }),
            _ => Self::start(port, log).await,
        }
    }

    pub async fn start(port: u16, log: Option<PathBuf>) -> Result<Self> {
        let port = if port == 0 { free_port()? } else { port };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!("port {port} is taken: use another emulator port, or point AWS_ENDPOINT_URL at the running emulator");
        }
        let moto = moto_server()?;
        let stdout = match &log {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Stdio::from(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?)
            }
            None => Stdio::null(),
        };
        let mut command = Command::new(&moto);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        // The emulator must not outlive whoever started it, even when that process is killed
        // (a test binary never drops its statics).
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", moto.display()))?;
        // 127.0.0.1, not localhost: S3 would otherwise put the bucket into the host name.
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_listening(port).await?;
        Ok(Self { endpoint, _child: Some(child) })
    }

    /// SDK configuration for the emulator: fixed region and dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint).await
    }
}

pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "concierge-local"))
        .load()
        .await
}

fn moto_server() -> Result<PathBuf> {
    let venv = std::env::var_os("CONCIERGE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let bin = venv.join("bin/moto_server");
    if !bin.exists() {
        bail!("{} not found: run `make venv` (or set AWS_ENDPOINT_URL to a running emulator)", bin.display());
    }
    Ok(bin)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_until_listening(port: u16) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("moto server did not start listening on port {port} within 60 s")
}
