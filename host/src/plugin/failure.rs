//! How a plugin call fails, and what its entry's policy makes of that: the failure kinds
//! logs and metrics count, and the translation of wasmtime's traps and the host's own
//! faults (memory cap, oversized output) into them.

use wasmtime::Trap;

use super::state::Fault;

/// What happens to the request when the plugin fails (trap, deadline, memory, error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Answer the client with a problem response: 503 for a deadline, 500 otherwise.
    Closed,
    /// Go on with the request as the plugin left it.
    Open,
    /// Go on with the request as it was before the plugin ran, its edits discarded.
    Skip,
}

impl FailurePolicy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::Skip => "skip",
        }
    }
}

/// How a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginFailure {
    /// The call ran past its deadline.
    Timeout,
    /// The plugin tried to use more memory than its budget.
    MemoryExhausted,
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access...).
    Trap(String),
    /// The plugin returned an error.
    Error(String),
    /// The plugin handed back more than its budget allows.
    OutputTooLarge(&'static str),
    /// No instance could be had in time (pool full).
    Unavailable(String),
}

impl PluginFailure {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::MemoryExhausted => "memory",
            Self::Trap(_) => "trap",
            Self::Error(_) => "error",
            Self::OutputTooLarge(_) => "output_too_large",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("deadline exceeded"),
            Self::MemoryExhausted => f.write_str("memory budget exhausted"),
            Self::Trap(m) => write!(f, "trap: {m}"),
            Self::Error(m) => write!(f, "plugin error: {m}"),
            Self::OutputTooLarge(what) => write!(f, "output too large: {what}"),
            Self::Unavailable(m) => write!(f, "no instance available: {m}"),
        }
    }
}

/// The failure for a lane call no one saw end (see `cpu::on_lane`).
pub(super) fn lane_gone() -> PluginFailure {
    PluginFailure::Unavailable("the plugin lane did not run the call".into())
}

/// Names the failure when the host knows more than the trap says.
pub(super) fn classify(fault: Option<Fault>, e: &wasmtime::Error) -> Option<PluginFailure> {
    match fault {
        Some(Fault::MemoryCap { .. }) => return Some(PluginFailure::MemoryExhausted),
        Some(Fault::OutputTooLarge(what)) => return Some(PluginFailure::OutputTooLarge(what)),
        None => {}
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Some(PluginFailure::Timeout),
        Some(trap) => Some(PluginFailure::Trap(trap.to_string())),
        // wasmtime's hostcall fuel ran out: the guest handed over more than the store
        // allows in one call, refused before the copy (`new_store`). Its error type is
        // private; `a_reply_over_budget_is_refused_as_such_before_it_is_copied` keeps
        // this match honest across wasmtime versions.
        None if e
            .chain()
            .any(|c| c.to_string().contains("fuel allocated for hostcalls")) =>
        {
            Some(PluginFailure::OutputTooLarge(
                "more data handed to the host in one call than `body_bytes` and the head limits allow",
            ))
        }
        None => None,
    }
}

pub(super) fn error_text(e: &wasmtime::Error) -> String {
    // A trap's backtrace comes first in the chain and can fill the log's cap on its own:
    // the reason (an exit status, a WASI limit) goes before it.
    let (backtraces, reasons): (Vec<String>, Vec<String>) = e
        .chain()
        .map(|c| c.to_string())
        .partition(|t| t.starts_with("error while executing at wasm backtrace"));
    reasons
        .into_iter()
        .chain(backtraces)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Guest text in logs is capped.
pub(super) fn truncate(mut s: String) -> String {
    const MAX: usize = 512;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trap_reads_reason_first_and_its_backtrace_after() {
        let e = wasmtime::Error::msg("Exited with i32 exit status 3")
            .context("error while executing at wasm backtrace:\n    0: 0x1a2b - <unknown>!main");
        let text = truncate(error_text(&e));
        assert!(
            text.starts_with("Exited with i32 exit status 3: error while executing"),
            "{text}"
        );
        let e = wasmtime::Error::msg("no such file").context("reading the key set");
        assert_eq!(error_text(&e), "reading the key set: no such file");
    }
}
