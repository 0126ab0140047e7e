//! `alicia`: run the engine, or check a configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use alicia::config::{AliciaConfig, IoBackend};
use alicia::config_service::{ConfigFile, Overrides};
use alicia::{Engine, Live, LogFilter};
use alicia_voice_bus::offline;
use clap::{Parser, Subcommand, ValueEnum};

mod backup;
mod certs;
mod keys;
mod passwd;
mod say_remote;

/// Shutdown must finish within 5 s of the signal; past this the process exits anyway.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);

#[derive(Parser)]
#[command(name = "alicia", version, about = "Alicia bus: MQTT broker and voice data plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: embedded MQTT broker, core services, HTTP API.
    Serve {
        /// Engine configuration.
        #[arg(long, short, default_value = "bus-config/alicia.toml")]
        config: PathBuf,
        /// Environment overlay: environments/<ENV>.toml next to the config.
        #[arg(long, env = "ALICIA_ENV")]
        env: Option<String>,
        /// Override mqtt.listen (e.g. 127.0.0.1:0 for any free port).
        #[arg(long)]
        mqtt_listen: Option<SocketAddr>,
        /// Override http.listen.
        #[arg(long)]
        http_listen: Option<SocketAddr>,
        /// Override wyoming.listen.
        #[arg(long)]
        wyoming_listen: Option<SocketAddr>,
        /// Override mqtt.io.
        #[arg(long, value_enum)]
        io: Option<IoArg>,
        /// Override voice.home: the rooms, devices and sites the voice acts on.
        #[arg(long)]
        home: Option<PathBuf>,
        /// Override storage.dir: where the durable store lives (one engine per directory).
        #[arg(long)]
        storage_dir: Option<PathBuf>,
    },
    /// Fetch, convert and verify the voice models (Whisper tiny.en as ggml, the Piper
    /// voice, ONNX Runtime) into DIR; skips what is already there and intact.
    Models {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
        /// Only check what is there; download nothing.
        #[arg(long)]
        verify: bool,
    },
    /// Ask the assistant with a recorded request (16 kHz mono 16-bit WAV): prints the
    /// transcript, intent, action and per-stage latency, and saves the spoken reply.
    Ask {
        wav: PathBuf,
        #[arg(long, default_value = "kitchen")]
        site: String,
        #[arg(long, default_value = "reply.wav")]
        out: PathBuf,
        #[command(flatten)]
        voice: VoiceArgs,
    },
    /// Speak TEXT with the Piper voice: into a WAV file, or with --site on that site's
    /// speaker through the running engine.
    Say {
        text: String,
        /// Play it on this site's speaker, through the running engine (over MQTT),
        /// instead of only writing a WAV.
        #[arg(long)]
        site: Option<String>,
        /// The running engine's MQTT address (with --site).
        #[arg(long, default_value = "127.0.0.1:1883")]
        mqtt: SocketAddr,
        /// The WAV to write: the synthesised speech, or with --site what the speaker got
        /// [default: say.wav without --site, none with it].
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        voice: VoiceArgs,
    },
    /// Manage a mosquitto-compatible password file (as mosquitto_passwd):
    /// `passwd [-c] [-b] [-D] [-U] FILE USER [PASSWORD]`.
    Passwd(passwd::PasswdArgs),
    /// Check a configuration and list every error with its path.
    CheckConfig {
        config: PathBuf,
        #[arg(long, env = "ALICIA_ENV")]
        env: Option<String>,
    },
    /// The development PKI for the TLS listener: a CA, server and client certificates,
    /// and the revocation list.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Signing keys for `[security.signing]`: `keys add KEY_ID --file FILE`.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Copy the durable store (`[storage] dir`) to FILE: online from a running engine
    /// (over its HTTP API), or read here when none runs.
    Backup(backup::StoreArgs),
    /// Replace the durable store with the backup FILE (the engine must be stopped; the
    /// store it replaces is kept beside it).
    Restore(backup::StoreArgs),
}

#[derive(clap::Args)]
struct VoiceArgs {
    /// Where `make models` put the models.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// The home's rooms, devices and sites.
    #[arg(long, default_value = "bus-config/home.toml")]
    home: PathBuf,
}

impl VoiceArgs {
    fn paths(self) -> offline::VoicePaths {
        offline::VoicePaths { models: self.models, home: self.home }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alicia: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum IoArg {
    Auto,
    Uring,
    Epoll,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Passwd(args) => report(passwd::run(args)),
        Command::Ask { wav, site, out, voice } => report(offline::ask(&voice.paths(), &wav, &site, &out)),
        Command::Say { text, site: Some(site), mqtt, out, voice: _ } => {
            report(say_remote::say_on_site(mqtt, &text, &site, out.as_deref()))
        }
        Command::Say { text, site: None, out, voice, .. } => {
            report(offline::say(&voice.paths(), &text, &out.unwrap_or_else(|| PathBuf::from("say.wav"))))
        }
        Command::Models { dir, verify } => {
            let result = if verify {
                alicia_models::verify_all(&dir).map(|_| ())
            } else {
                alicia_models::ensure_all(&dir, |line| println!("{line}")).map(|_| ())
            };
            match result {
                Ok(()) => {
                    println!("models in {}: ok", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("alicia models: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Certs { command } => certs::run(command),
        Command::Keys { command } => report(keys::run(command)),
        Command::Backup(args) => report(backup::backup(args)),
        Command::Restore(args) => report(backup::restore(args)),
        Command::CheckConfig { config, env } => match AliciaConfig::load(&config, env.as_deref()) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config, env, mqtt_listen, http_listen, wyoming_listen, io, home, storage_dir } => {
            let io = io.map(|io| match io {
                IoArg::Auto => IoBackend::Auto,
                IoArg::Uring => IoBackend::Uring,
                IoArg::Epoll => IoBackend::Epoll,
            });
            let overrides = Overrides { mqtt_listen, http_listen, wyoming_listen, io, home, storage_dir };
            let file = ConfigFile { path: config.clone(), environment: env, overrides };
            // The flags are laid over the file and checked with it: a flag may have moved
            // a door off loopback, and a reload keeps them.
            let loaded = match file.load() {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{} has {} error(s):\n{errors}", config.display(), errors.len());
                    return ExitCode::from(2);
                }
            };
            let log = init_logging(&loaded.engine.log_level);
            match serve(loaded, Live { file: Some(file), log: Some(log) }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("alicia: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(config: AliciaConfig, live: Live) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("alicia-main")
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Before the ready line: a SIGTERM sent the moment it is read must find the
        // handler, not the default action that kills the process mid-sentence.
        let signals = Signals::install()?;
        let engine = Engine::start_live(config, live, Arc::new(|code| std::process::exit(code))).await?;
        // Scripts and tests read this line to find the ports.
        let wyoming = engine.wyoming_addr().map_or_else(|| "off".to_string(), |a| a.to_string());
        let tls = engine.mqtt_tls_addr().map_or_else(|| "off".to_string(), |a| a.to_string());
        let websocket = engine.mqtt_websocket_addr().map_or_else(|| "off".to_string(), |a| a.to_string());
        println!(
            "alicia ready mqtt={} http={} io={} wyoming={wyoming} mqtt-tls={tls} mqtt-websocket={websocket}",
            engine.mqtt_addr(),
            engine.http_addr(),
            engine.io_backend()
        );
        let signal = signals.wait(&engine).await;
        tracing::info!(signal, "shutting down");
        if tokio::time::timeout(SHUTDOWN_BUDGET, engine.shutdown()).await.is_err() {
            tracing::warn!("shutdown took longer than {SHUTDOWN_BUDGET:?}; exiting anyway");
        }
        anyhow::Ok(())
    })?;
    // Blocking tasks (link builds) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// SIGTERM, SIGINT (stop) and SIGHUP (re-read the config file and the security files).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT; each SIGHUP meanwhile re-reads the config file and
    /// the security files.
    async fn wait(mut self, engine: &Engine) -> &'static str {
        loop {
            tokio::select! {
                _ = self.term.recv() => return "SIGTERM",
                _ = self.int.recv() => return "SIGINT",
                _ = self.hup.recv() => match engine.reload() {
                    Ok(()) => tracing::info!("SIGHUP: config and security files reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: reload refused, the old config stays"),
                },
            }
        }
    }
}

/// `ALICIA_LOG` when set, else `[engine] log_level`; the returned filter replaces it
/// later (a config update or SIGHUP that changes `log_level`).
fn init_logging(log_level: &str) -> LogFilter {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let directives = std::env::var("ALICIA_LOG").unwrap_or_else(|_| log_level.to_owned());
    let filter = tracing_subscriber::EnvFilter::new(without_router_logs(&directives));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // Colour codes are for a person at a terminal; in a journal or a file they are noise.
    let ansi = std::io::stderr().is_terminal();
    let output = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    tracing_subscriber::registry().with(filter).with(output).init();
    // A panic (a stage the supervision restarts, say) is logged like everything else,
    // with a timestamp and at error, instead of a bare line on stderr.
    std::panic::set_hook(Box::new(|panic| {
        let thread = std::thread::current();
        let location = panic.location().map(ToString::to_string).unwrap_or_default();
        let message = match (panic.payload().downcast_ref::<&str>(), panic.payload().downcast_ref::<String>()) {
            (Some(text), _) => (*text).to_owned(),
            (_, Some(text)) => text.clone(),
            _ => "a panic without a message".to_owned(),
        };
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), %location, "panicked: {message}");
    }));
    Arc::new(move |directives: &str| {
        let filter = tracing_subscriber::EnvFilter::builder()
            .parse(without_router_logs(directives))
            .map_err(|e| format!("engine.log_level: {e}"))?;
        handle.reload(filter).map_err(|e| format!("engine.log_level: {e}"))
    })
}

/// rumqttd opens an error-level span for every message its router appends, which a
/// log filter at info or below records (it formats the entry's topic each time):
/// that alone cut the bus's throughput by two thirds. The router's own logs stay off
/// unless asked for by name; the engine reports the router's failure itself.
fn without_router_logs(directives: &str) -> String {
    if directives.contains("rumqttd") {
        directives.to_owned()
    } else {
        format!("{directives},rumqttd=off")
    }
}
