"""Run the numbered notebook series with papermill and print a summary table.

    python -m mil_core.reproduce [--profile smoke|cpu|paper] [--only 00,03] [--jobs N] [--debug]

Each notebook ``notebooks/NN_*.ipynb`` runs in its own papermill process with the profile
injected as the ``PROFILE`` parameter, a wall-clock timeout, and torch threads split between the
parallel jobs (one thread per job when ``--jobs`` > 1; REFERENCE §7). A failing notebook does not
stop the series; the exit status is non-zero if any failed. Executed notebooks go to a build
folder (git-ignored), figures to ``figures/`` unless told otherwise, and the table is also
written as ``summary.md`` and ``summary.json`` next to the executed notebooks.

Exit status: 0 when every notebook ran, 1 when one failed, 2 for a bad argument (one line
``error: …`` on stderr; ``--debug`` or ``MIL_DEBUG=1`` shows the traceback, see
:mod:`mil_core.cli`), 130 when interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .cli import add_debug_argument, run_main
from .errors import ConfigError
from .profiles import get_profile, profile_names
from .runtime import repo_root

__all__ = ["NotebookResult", "find_notebooks", "run_notebook", "run_series", "stamp_wall_time",
           "main"]


@dataclass
class NotebookResult:
    notebook: str         # file name, e.g. "00_setup_and_data.ipynb"
    status: str           # "ok", "failed" or "timeout"
    minutes: float        # wall-clock minutes
    figures: int          # figure files (PNG + PDF) written during the run
    output: str           # path of the executed notebook
    log: str              # path of papermill's log
    error: str = ""       # last line of the error, if any


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``folder`` in order, filtered by ``only``."""
    if not folder.is_dir():
        raise ConfigError(f"notebook folder {folder} does not exist; pass the folder that holds "
                          "the NN_*.ipynb files (--notebooks on the command line)")
    books = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = [o.strip() for o in only if o.strip()]
        chosen = [p for p in books if any(p.name.startswith(w) for w in wanted)]
        missing = [w for w in wanted if not any(p.name.startswith(w) for p in books)]
        if missing:
            raise ConfigError(f"--only {','.join(missing)}: no notebook in {folder} starts with "
                              f"that; available: {', '.join(p.name for p in books)}")
        books = chosen
    if not books:
        raise ConfigError(f"no numbered notebooks (NN_*.ipynb) in {folder}")
    return books


def _count_new_files(folder: Path, since: float) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= since)


def _last_error_line(log_text: str) -> str:
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln:
            return ln[:200]
    return lines[-1][:200] if lines else ""


def run_notebook(src: Path, out_dir: Path, profile: str, *, threads: int, timeout_min: float,
                 figures_dir: Path, params: dict[str, str] | None = None) -> NotebookResult:
    """Execute one notebook with papermill in a subprocess; never raises for notebook errors."""
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create folders
    dst, log = out_dir / src.name, out_dir / (src.stem + ".log")
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel's inline backend embeds figures in the notebook
    bindir = str(Path(sys.executable).parent)  # the venv's kernel resolves `python` on PATH
    env.update({
        "PATH": bindir + os.pathsep + env.get("PATH", ""),
        "MIL_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads), "MIL_NOTEBOOK": src.stem,
        "MIL_FIGURES_DIR": str(figures_dir.resolve()), "MIL_BATCH": "1",
        "MIL_PROFILE": profile, "PYTHONUNBUFFERED": "1",
    })
    cmd = [sys.executable, "-m", "papermill", str(src), str(dst), "-k", "python3",
           "--cwd", str(src.parent), "-p", "PROFILE", profile, "--no-progress-bar",
           "--log-output"]
    for key, value in (params or {}).items():
        cmd += ["-p", key, value]
    start = time.time()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_min * 60)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel too, not only papermill
            proc.wait()
            status = "timeout"
    minutes = (time.time() - start) / 60
    if status == "ok":
        stamp_wall_time(dst, minutes, threads)
    text = log.read_text(errors="replace")
    error = "" if status == "ok" else (
        f"exceeded {timeout_min:g} min" if status == "timeout" else _last_error_line(text))
    return NotebookResult(src.name, status, minutes,
                          _count_new_files(figures_dir / src.stem, start), str(dst), str(log),
                          error)


def stamp_wall_time(path: Path, minutes: float, threads: int) -> bool:
    """Add the run's wall time to the executed notebook's first output that names the machine
    (the setup cell's ``machine: …`` line), so the first thing a reader sees says which profile,
    machine, threads and how long. Returns False (and changes nothing) when there is no such line.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            text = out.get("text")
            if out.get("output_type") != "stream" or text is None:
                continue
            joined = "".join(text) if isinstance(text, list) else text
            if "machine:" not in joined:
                continue
            line = (f"wall time: {minutes:.1f} min for the whole notebook ({threads} torch "
                    f"thread(s); scripted papermill run, {time.strftime('%Y-%m-%d')})\n")
            out["text"] = joined + ("" if joined.endswith("\n") else "\n") + line
            nbformat.write(nb, str(path))
            return True
    return False


def format_table(results: list[NotebookResult]) -> str:
    """A Markdown table: notebook, status, minutes, figures written, error."""
    rows = ["| notebook | status | minutes | figures | error |", "|---|---|---:|---:|---|"]
    for r in results:
        rows.append(f"| {r.notebook} | {r.status} | {r.minutes:.2f} | {r.figures} | "
                    f"{r.error.replace('|', '/')} |")
    return "\n".join(rows)


def run_series(notebooks: list[Path], out_dir: Path, profile: str, *, jobs: int = 1,
               timeout_min: float | None = None, figures_dir: Path,
               params: dict[str, str] | None = None) -> list[NotebookResult]:
    """Run notebooks (in order when ``jobs`` is 1) and return one result each, in order."""
    prof = get_profile(profile)
    timeout = timeout_min if timeout_min is not None else prof.notebook_timeout_min
    # REFERENCE §7: parallel notebooks run single-threaded; a lone notebook gets every core
    threads = 1 if jobs > 1 else (os.cpu_count() or 1)

    def one(nb: Path) -> NotebookResult:
        print(f"[reproduce] {nb.name}: running ({prof.name} profile, {threads} thread(s))",
              flush=True)
        res = run_notebook(nb, out_dir, prof.name, threads=threads, timeout_min=timeout,
                           figures_dir=figures_dir, params=params)
        print(f"[reproduce] {nb.name}: {res.status} in {res.minutes:.2f} min"
              + (f" — {res.error} (log: {res.log})" if res.error else ""), flush=True)
        return res

    if jobs <= 1:
        return [one(nb) for nb in notebooks]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, notebooks))


def main(argv: list[str] | None = None) -> int:
    """The command line ``python -m mil_core.reproduce``: run the series, print the table.

    ``argv``: the arguments without the program name (None: ``sys.argv[1:]``; ``--help`` lists
    them). Returns the exit status: 0 when every notebook ran, 1 when one failed or timed out
    (or a file could not be written), 2 for a bad argument; an error is printed as one line
    ``error: …`` on stderr (see :func:`mil_core.cli.run_main`; ``--debug`` shows the traceback).
    """
    return run_main(_main, argv)


def _main(argv: list[str] | None) -> int:
    root = repo_root() or Path.cwd()
    ap = argparse.ArgumentParser(prog="python -m mil_core.reproduce", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "smoke"),
                    help=f"one of {', '.join(profile_names())} (default: smoke)")
    ap.add_argument("--only", default="", help="comma-separated prefixes, e.g. 00,03")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel")
    ap.add_argument("--timeout", type=float, default=None,
                    help="minutes per notebook (default: the profile's)")
    ap.add_argument("--notebooks", type=Path, default=root / "notebooks")
    ap.add_argument("--output-dir", type=Path, default=None,
                    help="executed notebooks (default: build/notebooks/<profile>)")
    ap.add_argument("--figures-dir", type=Path, default=root / "figures")
    ap.add_argument("--publish", action="store_true",
                    help="copy each notebook that ran ok over its source in notebooks/ (how the "
                         "committed outputs are made: make publish PROFILE=cpu)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="extra papermill parameter (string value)")
    add_debug_argument(ap)
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--param {item!r} must look like NAME=VALUE")
        params[key] = value
    books = find_notebooks(args.notebooks, args.only.split(",") if args.only else None)
    out_dir = args.output_dir or root / "build" / "notebooks" / prof.name
    results = run_series(books, out_dir, prof.name, jobs=args.jobs, timeout_min=args.timeout,
                         figures_dir=args.figures_dir, params=params)
    table = format_table(results)
    header = (f"profile {prof.name} on {platform.node() or 'this machine'} "
              f"({platform.machine()}, {os.cpu_count()} cores), jobs {args.jobs}")
    print(f"\n{header}\n{table}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(f"{header}\n\n{table}\n")
    (out_dir / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    if args.publish:
        for r in results:
            if r.status == "ok":
                shutil.copyfile(r.output, args.notebooks / r.notebook)
                print(f"[reproduce] published {r.notebook} ({prof.name} profile outputs)")
    failed = [r.notebook for r in results if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"\nall {len(results)} notebook(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
