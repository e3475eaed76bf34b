"""libnftables prints some errors to fd 2 itself, so podnat points fd 2 at /dev/null around
each call. The agent calls nft from several threads at once: fd 2 must come back to where it
was, and the agent's own log lines must never go to /dev/null meanwhile."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading

from helper.backends.nft.libnftables import Nft, NftError
from tests.kit.paths import REPO


def test_concurrent_calls_give_fd_2_back() -> None:
    before = os.fstat(2)
    errors: list[BaseException] = []

    def calls() -> None:
        nft = Nft()
        try:
            for _ in range(300):
                with contextlib.suppress(NftError):  # refused by the parser: no kernel
                    nft.run("this is not an nft command")
        except BaseException as err:
            errors.append(err)
        finally:
            nft.close()

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


AGENT_LOGGING = """
import logging, threading, sys
from helper import report
from helper.agent.main import log_to_own_stderr
from helper.backends.nft.libnftables import Nft, NftError
log = report.setup_logging("text", "info")
log_to_own_stderr()
stop = threading.Event()
def calls():
    nft = Nft()
    while not stop.is_set():
        try:
            nft.run("this is not an nft command")
        except NftError:
            pass
threads = [threading.Thread(target=calls) for _ in range(4)]
for t in threads: t.start()
for i in range(500):
    logging.getLogger("podnat.agent").info("line %d", i)
stop.set()
for t in threads: t.join()
"""


def test_the_agents_log_lines_survive_concurrent_nft_calls() -> None:
    done = subprocess.run(
        [sys.executable, "-c", AGENT_LOGGING],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in done.stderr.splitlines() if "line " in line]
    assert len(lines) == 500, done.stderr[-2000:]
