"""Stopping a served explorer the way a user does: Ctrl-C (SIGINT)."""
import signal
import time


def ctrl_c(proc, timeout: float = 20) -> str:
    """Send SIGINT to ``proc`` (a text-mode Popen with stdout piped), return the rest of its
    output; a process that does not stop in ``timeout`` seconds is killed (and fails the test
    through its return code)."""
    try:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out
