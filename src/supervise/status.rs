//! The exit code a supervisor passes on when its child ends (pure).

use nix::sys::wait::WaitStatus;

/// The child's own code if it exited, else 128 + the signal that ended it (as a shell
/// reports it); `None` for a status that is not an end (stopped, continued).
pub fn exit_code(status: &WaitStatus) -> Option<u8> {
    match *status {
        WaitStatus::Exited(_, code) => Some(u8::try_from(code & 0xff).unwrap_or(1)),
        WaitStatus::Signaled(_, signal, _) => Some(128u8.saturating_add(signal as u8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn codes_pass_through_and_signals_become_128_plus() {
        let p = Pid::from_raw(7);
        assert_eq!(exit_code(&WaitStatus::Exited(p, 0)), Some(0));
        assert_eq!(exit_code(&WaitStatus::Exited(p, 3)), Some(3));
        assert_eq!(
            exit_code(&WaitStatus::Signaled(p, Signal::SIGTERM, false)),
            Some(143)
        );
        assert_eq!(
            exit_code(&WaitStatus::Signaled(p, Signal::SIGKILL, true)),
            Some(137)
        );
        assert_eq!(exit_code(&WaitStatus::Stopped(p, Signal::SIGSTOP)), None);
        assert_eq!(exit_code(&WaitStatus::StillAlive), None);
    }
}
