"""How long `keras-mixnn --help`, `list` and `show` take, start of Python included.

`list` and `show` read recipes without importing Keras (so without starting
a backend); `run` is here for scale: it imports Keras and starts the backend
before it reads any data, so it stops at the data of a recipe with a
`--data-dir` that does not exist.

Usage: python benchmarks/cli_startup.py [--repeats N]
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "--help": ["--help"],
    "list": ["list"],
    "show": ["show", "digits_sym40"],
    "run (to the data)": ["run", "cifar10_sym40", "--data-dir", "/nonexistent", "--output", "/tmp/cli-startup-run"],
}


def seconds(args):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from keras_mixnn_cli import main; main()", *args], capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command; the median is printed")
    args = parser.parse_args()
    print(f"{'command':<20} median seconds over {args.repeats}")
    for name, command in COMMANDS.items():
        print(f"{name:<20} {statistics.median(seconds(command) for _ in range(args.repeats)):.2f}")


if __name__ == "__main__":
    main()
