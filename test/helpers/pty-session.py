#!/usr/bin/env python3
"""Drive a command in a real pseudo-terminal, the way a user at a terminal would.

usage: pty-session.py COLS ROWS -- COMMAND...   (steps as JSON on stdin: [[wait_for, keys], ...])

For each step: read the terminal until `wait_for` appears in the text (ANSI sequences removed), then
type `keys`. Afterwards wait for the command to exit. Prints one JSON object: the exit code, the raw
transcript and the step that timed out, if any. Only the standard library: CI has python3.
"""
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import fcntl
import time

ANSI = re.compile(r'\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]')


def main() -> None:
    cols, rows = int(sys.argv[1]), int(sys.argv[2])
    command = sys.argv[sys.argv.index('--') + 1:]
    steps = json.load(sys.stdin)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ['TERM'] = os.environ.get('TERM_FOR_TEST', 'xterm-256color')
        os.execvp(command[0], command)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
    os.kill(pid, signal.SIGWINCH)
    raw = b''
    seen = 0  # text before this index was matched by an earlier step
    timed_out = None

    def pump(timeout: float) -> bool:
        nonlocal raw
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return True
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return False
        if not chunk:
            return False
        raw += chunk
        return True

    for i, (wait_for, keys) in enumerate(steps):
        deadline = time.time() + 15
        found = False
        while time.time() < deadline:
            text = ANSI.sub('', raw.decode('utf-8', 'replace'))
            at = text.find(wait_for, seen)
            if at >= 0:
                seen = at + len(wait_for)
                found = True
                break
            if not pump(0.05):
                break
        if not found:
            timed_out = {'step': i, 'waitFor': wait_for}
            break
        time.sleep(0.05)
        os.write(fd, keys.encode())

    deadline = time.time() + 15
    code = None
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        pump(0.05)
    if code is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    while pump(0.05) and select.select([fd], [], [], 0)[0]:
        pass
    print(json.dumps({'code': code, 'transcript': raw.decode('utf-8', 'replace'), 'timedOut': timed_out}))


if __name__ == '__main__':
    main()
