"""How long `keras-mixnn --help`, `list` and `show` take, start of Python included.

`list` and `show` read recipes without importing Keras (so without starting
a backend); `run` is here for scale: it imports Keras and starts the backend
before it reads any data, so it stops at the data of a recipe with a
`--data-dir` that does not exist.

Usage: python benchmarks/cli_startup.py [--repeats N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ABSENT = os.path.join(tempfile.gettempdir(), "keras-mixnn-cli-startup-absent")
# Each command, and the exit status it must end with: `run` stops at the data directory, which does not exist.
COMMANDS = {
    "--help": (["--help"], 0),
    "list": (["list"], 0),
    "show": (["show", "digits_sym40"], 0),
    "run (to the data)": (["run", "cifar10_sym40", "--data-dir", ABSENT, "--output", ABSENT + "-run"], 1),
}


def seconds(args, status):
    start = time.perf_counter()
    command = [sys.executable, "-c", "from keras_mixnn_cli import main; main()", *args]
    completed = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if completed.returncode != status:
        sys.exit(f"keras-mixnn {' '.join(args)} exited with {completed.returncode}:\n{completed.stderr[-2000:]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command; the median is printed")
    args = parser.parse_args()
    print(f"{'command':<20} median seconds over {args.repeats}")
    for name, (command, status) in COMMANDS.items():
        print(f"{name:<20} {statistics.median(seconds(command, status) for _ in range(args.repeats)):.2f}")


if __name__ == "__main__":
    main()
