"""Silent seconds of a command: run it and time-stamp every chunk it writes (stdout and stderr, read as bytes as
they come, so tqdm's carriage-return updates count), then report the wall time, the longest stretch without any
output, and where it fell (the text just before and after it).

    python benchmarks/progress/silent_seconds.py --out RESULT.json -- ebmlab train kale --data stacked_digits ...

A progress bar that redraws at least once every few seconds keeps the longest silence short whatever the command
does; a phase that prints nothing until it ends shows as one long silence. The JSON keeps every gap over 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import subprocess
import sys
import time


def run(cmd: list[str]) -> dict:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    sel = selectors.DefaultSelector()
    assert p.stdout is not None and p.stderr is not None
    for f in (p.stdout, p.stderr):
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ)
    chunks: list[tuple[float, str]] = []
    open_streams = 2
    while open_streams:
        for key, _ in sel.select():
            data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
            if not data:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            chunks.append((time.perf_counter() - t0, data.decode(errors="replace")))
    rc = p.wait()
    wall = time.perf_counter() - t0
    times = [0.0] + [t for t, _ in chunks] + [wall]
    texts = ["(start)"] + [c for _, c in chunks] + ["(exit)"]
    gaps = [(times[i + 1] - times[i], i) for i in range(len(times) - 1)]
    longest, at = max(gaps)
    def tail(s: str) -> str:
        return s.replace("\r", "\n").strip().splitlines()[-1][-160:] if s.strip() else s
    return {"command": " ".join(cmd), "exit": rc, "wall_s": round(wall, 1), "longest_silence_s": round(longest, 1),
            "silence_after": tail(texts[at]), "silence_ended_by": tail(texts[at + 1]),
            "gaps_over_5s": [{"at_s": round(times[i], 1), "gap_s": round(g, 1), "after": tail(texts[i])}
                             for g, i in gaps if g > 5],
            "machine": f"{platform.node()} {os.cpu_count()} cores", "load_before": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    res = run(cmd)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "gaps_over_5s"}, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
