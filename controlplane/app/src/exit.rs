//! What a command's exit code means: one table for every command and both front ends
//! (the server maps the same outcomes to HTTP statuses).

use schemars::JsonSchema;
use serde::Serialize;

/// The outcome of a command, as a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// 0: done, or nothing to change.
    Success,
    /// 1: it failed (a service did not answer, a step failed, a saved plan is stale,
    /// something named does not exist, another run holds the lock).
    Failure,
    /// 2: changes are pending or output drifted (`plan`, `render --check`): nothing is
    /// broken, but the world is not as the files say.
    Pending,
    /// 3: invalid input or usage (an environment file, a flag, a missing `--yes`):
    /// fix the command or the files; nothing was touched.
    Invalid,
    /// 130: interrupted (Ctrl-C).
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Pending => 2,
            Exit::Invalid => 3,
            Exit::Interrupted => 130,
        }
    }
}

/// The table as `--help` and the README print it.
pub const TABLE: &str = "\
Exit codes (the same for every command):
  0    success, or nothing to change
  1    failure (a service or step failed, a saved plan is stale, not found, locked)
  2    changes pending or drift (`plan`, `render --check`)
  3    invalid input or usage (bad environment file or flag, missing --yes); nothing touched
  130  interrupted";
