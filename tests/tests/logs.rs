//! `alicia serve`'s log as an operator reads it from a journal or a file: no colour
//! codes when stderr is not a terminal, whisper.cpp's load chatter not at info, no
//! error at all on a healthy start and stop, and a client's repeated nonsense as one
//! line with a count rather than one line each.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use alicia_e2e::engine::{alicia_binary, bus_config_dir};
use alicia_e2e::voice::repo_root;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_plain_text_and_a_flood_of_one_complaint_is_one_line() {
    let config = bus_config_dir().join("alicia.toml");
    let mut child = Command::new(alicia_binary())
        .current_dir(repo_root())
        .args(["serve", "--config", config.to_str().unwrap(), "--env", "development"])
        .args(["--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--wyoming-listen", "127.0.0.1:0"])
        .env_remove("ALICIA_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("alicia starts");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    let wyoming: SocketAddr = ready
        .split_whitespace()
        .find_map(|field| field.strip_prefix("wyoming="))
        .unwrap_or_else(|| panic!("no wyoming= in {ready:?}"))
        .parse()
        .unwrap();

    // A client that sends 200 events this server does not serve, then asks something.
    let mut client = tokio::net::TcpStream::connect(wyoming).await.unwrap();
    let mut events = "{\"type\":\"detect\"}\n".repeat(200);
    events.push_str("{\"type\":\"ping\"}\n");
    client.write_all(events.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::io::BufReader::new(&mut client).read_line(&mut answer).await.unwrap();
    assert!(answer.contains("\"pong\""), "{answer}");
    drop(client);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(child.wait().unwrap().success());

    assert!(log.contains("voice data plane ready"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|line| line.contains("ERROR")).collect();
    assert!(errors.is_empty(), "errors on a healthy run: {errors:#?}");
    assert!(!log.lines().any(|line| line.contains(" INFO ") && line.contains("whisper_")), "{log}");
    let complaints: Vec<&str> =
        log.lines().filter(|line| line.contains("ignoring wyoming events this server does not serve")).collect();
    assert_eq!(complaints.len(), 1, "{complaints:#?}");
    assert!(complaints[0].contains("suppressed=0"), "{}", complaints[0]);
}
