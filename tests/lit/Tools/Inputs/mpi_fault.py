#!/usr/bin/env python3
"""Runs an mpirun job in which one rank fails, bounded in time.

  mpi_fault.py --ranks P --fault R:ACTION:WHEN --timeout T --marker M [--at-most-one]
               -- MPIRUN_COMMAND...

Starts MPIRUN_COMMAND (which must use --tag-output) with
LOOM_RING_TEST_FAULT=R:ACTION:WHEN (see tools/loom/Ring.cpp), waits at most
T + 10 seconds, and checks that mpirun has exited with a nonzero status, that
every other rank printed exactly one typed error line (a timeout or a peer's
failure), and that no process of the job is left. Whatever happens, every
process the test started is resumed (SIGCONT) and killed at the end. Prints
PASS or FAIL with the reason (and the job's output on FAIL, or always with
MPI_FAULT_VERBOSE=1); exits 1 on FAIL.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time


def job_processes(marker):
    """PIDs (not ours) whose command line mentions `marker`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = open("/proc/%s/cmdline" % entry, "rb").read()
        except OSError:
            continue
        if marker.encode() in cmdline:
            pids.append(int(entry))
    return pids


def kill_all(pids):
    for sig in (signal.SIGCONT, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, required=True)
    parser.add_argument("--fault", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--at-most-one", action="store_true",
                        help="ranks may print no error line (mpirun kills them first)")
    parser.add_argument("--marker", required=True,
                        help="a string on every rank's command line (the test's temp dir)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    faulty = int(args.fault.split(":")[0])
    env = dict(os.environ, LOOM_RING_TEST_FAULT=args.fault)
    limit = args.timeout + 10
    start = time.monotonic()
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                           start_new_session=True)
    problems = []
    try:
        output, _ = job.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        problems.append("mpirun still running %.0f s after the start" % limit)
        kill_all(job_processes(args.marker))
        os.killpg(job.pid, signal.SIGKILL)
        output, _ = job.communicate()
    elapsed = time.monotonic() - start
    text = output.decode(errors="replace")
    if job.returncode == 0:
        problems.append("mpirun exited with status 0")
    # Every rank but the faulty one: one typed error line.
    typed = re.compile(r"loom: error: .*(timed out after \d+ ms|rank \d+ failed: )")
    for rank in range(args.ranks):
        if rank == faulty:
            continue
        lines = [l for l in text.splitlines()
                 if re.match(r"\[\d+,%d\]<stderr>:" % rank, l) and "loom: error:" in l]
        expected = len(lines) <= 1 if args.at_most_one else len(lines) == 1
        if not expected or not all(typed.search(l) for l in lines):
            problems.append("rank %d printed %d error line(s), expected one typed error: %r"
                            % (rank, len(lines), lines))
    # No process of the job may outlive mpirun (allow the launcher a moment
    # to reap its children).
    deadline = time.monotonic() + 3
    left = job_processes(args.marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = job_processes(args.marker)
    if left:
        problems.append("processes left after mpirun: %s" % left)
    kill_all(left)
    if problems or os.environ.get("MPI_FAULT_VERBOSE"):
        sys.stdout.write(text)
    if problems:
        print("FAIL (%s): %s" % (args.fault, "; ".join(problems)))
        return 1
    # A launcher that dies on a signal while tearing the job down (OpenMPI's
    # mpirun was seen to take SIGSEGV under load after a rank's early exit)
    # still ended the job nonzero; report it as a shell would, 128 + N.
    status = job.returncode if job.returncode > 0 else 128 - job.returncode
    how = "" if job.returncode > 0 else " (mpirun ended by signal %d)" % -job.returncode
    print("PASS (%s): mpirun exited with status %d%s after %.1f s (limit %.0f s); %d ranks each "
          "printed %s typed error; no process left" % (args.fault, status, how, elapsed,
                                                   limit, args.ranks - 1,
                                                   "at most one" if args.at_most_one else "one"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
