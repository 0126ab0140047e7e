//! `alicia backup FILE` and `alicia restore FILE`: the durable store (`[storage] dir`) to
//! a file and back.
//!
//! A backup is online: when an engine runs on the store (it holds the directory's lock),
//! the engine streams a snapshot over its HTTP API (`GET /store/backup`, with the bearer
//! token of `[http] token_file` when there is one); when none does, the store is read
//! here. Either way the file is written as `FILE.partial`, checked whole (framing,
//! record count, SHA-256) and only then renamed to FILE. A restore needs the engine
//! stopped; it checks the whole file before it touches the store and keeps the store it
//! replaces beside it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use alicia_config::AliciaConfig;
use alicia_store::{Store, StoreError, StoreSettings, SyncMode};
use anyhow::{bail, Context};

#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// The backup file.
    file: PathBuf,
    /// Engine configuration (its `[storage] dir`, `[http]` listen and token).
    #[arg(long, short, default_value = "bus-config/alicia.toml")]
    config: PathBuf,
    /// Environment overlay: environments/<ENV>.toml next to the config.
    #[arg(long, env = "ALICIA_ENV")]
    env: Option<String>,
    /// The running engine's HTTP address, when not `[http] listen`.
    #[arg(long)]
    http: Option<SocketAddr>,
}

fn store_dir(config: &AliciaConfig) -> anyhow::Result<PathBuf> {
    config.storage.dir.clone().context("this configuration keeps no store: [storage] dir is not set")
}

pub(crate) fn backup(args: StoreArgs) -> anyhow::Result<()> {
    let config = AliciaConfig::load(&args.config, args.env.as_deref())?;
    let dir = store_dir(&config)?;
    if !dir.join("db").exists() {
        bail!("there is no store in {} yet (an engine with this [storage] dir makes one)", dir.display());
    }
    let settings = StoreSettings { dir: dir.clone(), sync: SyncMode::Batch, sync_interval: Duration::from_millis(200) };
    let summary = match Store::open(&settings) {
        Ok((store, _)) => {
            let summary = store.backup(&args.file)?;
            store.close();
            summary
        }
        Err(StoreError::Locked(_)) => {
            let addr = args.http.unwrap_or(config.http.listen);
            let token = config
                .http
                .token_file
                .as_deref()
                .map(|f| std::fs::read_to_string(f).with_context(|| format!("[http] token_file {}", f.display())))
                .transpose()?;
            download(reachable(addr), token.as_deref().map(str::trim), &args.file)?
        }
        Err(e) => return Err(e.into()),
    };
    println!("{}: {} records, {} bytes", args.file.display(), summary.records, summary.bytes);
    Ok(())
}

pub(crate) fn restore(args: StoreArgs) -> anyhow::Result<()> {
    let config = AliciaConfig::load(&args.config, args.env.as_deref())?;
    let dir = store_dir(&config)?;
    let summary = alicia_store::restore(&dir, &args.file).map_err(|e| match e {
        StoreError::Locked(dir) => {
            anyhow::anyhow!("an engine is running on {}: stop it before a restore", dir.display())
        }
        e => e.into(),
    })?;
    println!("{} restored into {}: {} records", args.file.display(), dir.display(), summary.records);
    Ok(())
}

/// A wildcard listen address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Fetches `GET /store/backup` into `file` (through `file.partial`, checked whole).
fn download(addr: SocketAddr, token: Option<&str>, file: &Path) -> anyhow::Result<alicia_store::BackupSummary> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("the engine holds the store, but its HTTP API at {addr} does not answer"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET /store/backup HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the engine's answer ended in its headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            chunked |= name.eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked");
        }
    }
    if status.split_whitespace().nth(1) != Some("200") {
        let mut body = String::new();
        let _ = reader.take(4096).read_to_string(&mut body);
        bail!("the engine refused the backup: {} {}", status.trim(), body.trim());
    }
    let partial = PathBuf::from(format!("{}.partial", file.display()));
    let result = (|| -> anyhow::Result<alicia_store::BackupSummary> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
        if chunked {
            copy_chunked(&mut reader, &mut out)?;
        } else {
            std::io::copy(&mut reader, &mut out)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(alicia_store::verify(&partial)?)
    })();
    match result {
        Ok(summary) => {
            std::fs::rename(&partial, file)?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e.context("the backup did not arrive whole; nothing was written"))
        }
    }
}

/// Copies an HTTP/1.1 chunked body.
fn copy_chunked(reader: &mut impl BufRead, out: &mut impl Write) -> anyhow::Result<()> {
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size)? == 0 {
            bail!("the stream ended before its last chunk");
        }
        let size = size.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).with_context(|| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(());
        }
        std::io::copy(&mut reader.take(size as u64), out)?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}
