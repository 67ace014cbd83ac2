//! The real `portcullis` binary as a child process: its access log (stdout) and
//! operational log (stderr) are read line by line, and signals are real signals.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// Upper bound for waiting on the child, so a broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a start may go without a line: compiling a Python or JavaScript plugin the
/// first time takes tens of seconds on two cores (only an upper bound against a hang).
const STARTUP_PATIENCE: Duration = Duration::from_secs(600);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

pub struct GatewayProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    access: Receiver<String>,
    ops: Receiver<String>,
}

impl GatewayProcess {
    /// Starts `portcullis run -c CONFIG` and waits for its "listening" line.
    pub fn start(config: &Path) -> Self {
        let mut child = Command::new(binary())
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portcullis");
        let access = lines(child.stdout.take().expect("stdout"));
        let ops = lines(child.stderr.take().expect("stderr"));
        // Owned before the wait, so a gateway that never listens is stopped with the test.
        let mut gateway = Self {
            child: Some(child),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            access,
            ops,
        };
        loop {
            let line = gateway
                .ops
                .recv_timeout(STARTUP_PATIENCE)
                .expect("the gateway printed no `listening` line");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "listening"
                && let Some(addr) = v["address"].as_str().and_then(|a| a.parse().ok())
            {
                gateway.addr = addr;
                return gateway;
            }
        }
    }

    /// The next access-log line, parsed.
    pub fn next_access(&self) -> serde_json::Value {
        let line = self
            .access
            .recv_timeout(PATIENCE)
            .expect("no access log line");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("access line is not JSON ({e}): {line}"))
    }

    /// The next operational-log line whose message is `message`.
    pub fn wait_for_ops(&self, message: &str) -> serde_json::Value {
        loop {
            let line = self.ops.recv_timeout(PATIENCE).expect("ops log ended");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == message
            {
                return v;
            }
        }
    }

    /// The next operational-log line whose message contains `text`.
    pub fn wait_for_ops_containing(&self, text: &str) -> serde_json::Value {
        loop {
            let line = self.ops.recv_timeout(PATIENCE).expect("ops log ended");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"].as_str().is_some_and(|m| m.contains(text))
            {
                return v;
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.as_ref().expect("running").id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit (bounded), returning the status.
    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let (tx, rx) = channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                panic!("gateway did not exit");
            }
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `portcullis ARGS…` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run portcullis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
