"""SIGUSR1 makes a Sieve process print its threads' stacks and go on running."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_sigusr1_prints_every_thread_and_the_process_goes_on() -> None:
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        from services.stack_dumps import dump_stacks_on_sigusr1

        def waiting_in_a_helper_thread():
            time.sleep(30)

        dump_stacks_on_sigusr1()
        threading.Thread(target=waiting_in_a_helper_thread, daemon=True).start()
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGUSR1)
        print("still running", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "still running"
    assert "waiting_in_a_helper_thread" in done.stderr
    assert done.stderr.count("hread 0x") >= 2  # "Current thread" and the other
