"""The benchmark scripts run as documented and print their tables (on tiny inputs).

Their figures are measured by hand (docs/benchmarks.md); these tests only
keep the scripts working as the library changes.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tiny_cifar

# The scripts are the same on every backend; the library they call is tested under all three.
pytestmark = pytest.mark.backends("tensorflow", reason="a benchmark script's test runs under one backend")
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = r"[0-9][0-9.,]*"


def run_benchmark(name, *args):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *map(str, args)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def table_rows(output):
    return [line for line in output.splitlines() if line.startswith("| ") and not line.startswith("| N |")]


@pytest.fixture
def tiny_cifar(tmp_path):
    """A cifar10-10k.npz lookalike: 100 training and 20 test images of 10 classes."""
    return write_tiny_cifar(tmp_path / "tiny.npz", num_train=100, num_test=20)


def test_neighbours_benchmark_finds_every_neighbour_of_easy_data():
    output = run_benchmark("neighbours.py", "--sizes", 600, "--dims", 16, "--queries", 100, "--threads", 1)
    rows = [row for row in table_rows(output) if "not installed" not in row]
    methods = [row.split("|")[3].strip() for row in rows]
    assert methods[:4] == [
        "hnsw M=16 efc=100 ef=64",
        "hnsw M=16 efc=100 ef=64 deterministic",
        "exact (keras.ops)",
        "exact (numpy)",
    ]
    for row in rows:
        if "exact (numpy)" not in row:  # the ground truth itself
            assert row.rstrip(" |").endswith("1.0000"), row


def test_neighbours_at_scale_benchmark_times_build_and_query_and_measures_recall():
    output = run_benchmark(
        "neighbours_at_scale.py", "--samples", 3000, "--dims", 32, "--latent-dims", 4, "--pca", 8, "--queries", 100
    )
    rows = [row.split("|")[1:-1] for row in table_rows(output) if not row.startswith("| search")]
    assert "| recall@K | same class as exact |" in output
    assert [row[0].strip() for row in rows] == ["hnswlib", "hnswlib, PCA to 8", "faiss HNSWFlat"]
    for name, dims, _, build, query, per_sample, recall, same_class, memory, estimate in rows:
        assert dims.strip() == ("8" if "PCA" in name else "32")
        assert all(re.fullmatch(NUMBER, value.strip()) for value in (build, query, per_sample, memory, estimate))
        # The graphs find the exact neighbours; 8 principal components of 32 lose some (the benchmark's
        # point), but far fewer classes than chance (1 in 100) would.
        if "PCA" in name:
            assert 0.5 <= float(same_class) <= 1.0 and float(recall) <= float(same_class), name
        else:
            assert float(recall) >= 0.99 and float(same_class) >= 0.99, name


def test_mixture_benchmark_compares_subset_and_full_fits():
    output = run_benchmark("mixture.py", "--sizes", 2000, "--seeds", 1, "--fit-samples", 500)
    row = table_rows(output)[-1]
    assert re.search(rf"\| 2,000 \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", row), output


def test_epoch_overhead_benchmark_prints_a_ratio_per_round(tiny_cifar):
    output = run_benchmark(
        "epoch_overhead.py", "--data", tiny_cifar, "--samples", 64, "--batch-size", 32, "--epochs", 1, "--rounds", 2
    )
    assert re.search(rf"ratio per round: {NUMBER} \(.*\), {NUMBER} \(", output), output
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    assert re.search(rf"\| {backend} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", output), output


def test_epoch_overhead_benchmark_names_a_missing_data_file(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "epoch_overhead.py"), "--data", str(tmp_path / "absent.npz")],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert "absent.npz not found" in completed.stderr


@pytest.mark.slow
def test_correction_audit_scores_every_rule_against_the_true_labels(tiny_cifar):
    tiny = ["--set", "train_samples=none", "--set", "test_samples=none", "--set", "holdout_fraction=0",
            "--set", "batch_size=20", "--set", "epochs=3", "--set", "warmup_epochs=1", "--set", "correction_start=1"]  # fmt: skip
    output = run_benchmark("correction_audit.py", "--data", tiny_cifar, "--noise", "sym40", *tiny)
    assert "2 correcting passes audited" in output
    for rule in ("doubted", "confident 0.5", "confident 0.9", "P(clean) < 0.01", "neighbours agree",
                 "class-wise mixture"):  # fmt: skip
        assert re.search(rf"\| {re.escape(rule)} \| {NUMBER} \| ", output), output
    assert "| given label (right) | predicted | samples | share |" in output


@pytest.mark.slow
def test_accuracy_benchmark_appends_each_run_and_tables_them(tiny_cifar, tmp_path):
    results = tmp_path / "results.jsonl"
    tiny = ["--set", "train_samples=none", "--set", "test_samples=none", "--set", "batch_size=20", "--set", "epochs=3",
            "--set", "warmup_epochs=1", "--set", "correction_start=1"]  # fmt: skip
    output = run_benchmark("accuracy.py", "--data", tiny_cifar, "--results", results, "--only", "sym40/mixnn/0", *tiny)
    assert len(results.read_text().splitlines()) == 1
    # A --set run is not the protocol: it is listed, with what differs, below the (here empty) table.
    rows = [line for line in output.splitlines() if line.startswith("| sym40 ")]
    assert len(rows) == 1 and "train_samples=None, test_samples=None, epochs=3, batch_size=20" in rows[0]
    assert re.search(rf"\| sym40 \| mixnn \| 0 \| .* \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", output), output
    # Run again: nothing is trained twice, and --table prints the same table from the file alone.
    again = run_benchmark("accuracy.py", "--data", tiny_cifar, "--results", results, "--only", "sym40/mixnn/0", *tiny)
    assert len(results.read_text().splitlines()) == 1
    assert run_benchmark("accuracy.py", "--results", results, "--table").strip() == again.strip()


def test_accuracy_table_shows_how_far_mixnn_falls_from_its_best_once_correction_starts(tmp_path):
    from keras_mixnn.recipe import cpu_cifar

    recipe = cpu_cifar("sym40", seed=0).to_dict()
    test = [0.3] * recipe["correction_start"] + [0.45, 0.5, 0.48, 0.46]  # Best after E_s 0.5, last 0.46.
    row = {"noise": "sym40", "method": "mixnn", "seed": 0, "recipe": recipe, "test_top1": 0.46, "label_accuracy": 0.7,
           "given_label_accuracy": 0.6, "detection_auc": 0.8, "memorised": 0.3, "minutes": 10.0,
           "history": {"val_accuracy": [0.9] + test[1:]}}  # fmt: skip
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(row) + "\n")
    output = run_benchmark("accuracy.py", "--results", results, "--table")
    assert "| sym40 | mixnn | 0 | 0.460 |  |  | 0.700 (0.600) | 0.800 | 0.040 | 0.300 | 10.0 |" in output, output


def test_image_loading_benchmark_compares_workers_and_neighbour_loading():
    output = run_benchmark("image_loading.py", "--images", 16)
    assert re.search(rf"pass, 2 workers / 1 worker: {NUMBER}x", output), output
    for workers in (1, 2):
        assert re.search(rf"workers={workers}: with neighbours / samples alone, same workers: {NUMBER}x", output), output


def test_memory_benchmark_reports_growth_for_each_size():
    output = run_benchmark("memory.py", "--sizes", 500, 1000)
    rows = table_rows(output)
    assert [row.split("|")[1].strip() for row in rows] == ["500", "1,000"]


def test_accuracy_table_reads_a_run_recorded_before_a_field_existed_as_it_trained(tmp_path):
    from keras_mixnn.recipe import BEFORE_FIELD_EXISTED, cpu_cifar

    today = cpu_cifar("asym40", seed=0).to_dict()
    old = {name: value for name, value in today.items() if name != "correction_changes_labels"}
    row = {"noise": "asym40", "method": "mixnn", "seed": 0, "recipe": old, "test_top1": 0.52, "label_accuracy": 0.725,
           "given_label_accuracy": 0.8, "detection_auc": 0.6, "memorised": 0.7, "minutes": 10.0,
           "holdout_true_accuracy": 0.54, "history": {"val_accuracy": [0.5] * today["epochs"]}}  # fmt: skip
    ce_recipe = cpu_cifar("asym40", method="ce", seed=0).to_dict()
    del ce_recipe["correction_changes_labels"]
    ce = {**row, "method": "ce", "recipe": ce_recipe, "label_accuracy": 0.8}  # A MixNN-only field leaves CE as it was.
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(row) + "\n" + json.dumps(ce) + "\n")
    output = run_benchmark("accuracy.py", "--results", results, "--table")
    # It relabelled, as every run did before the field existed: not today's protocol run.
    assert BEFORE_FIELD_EXISTED["correction_changes_labels"] is True
    assert "| asym40 | mixnn | 0 | correction_changes_labels=True | 0.520 |" in output, output
    assert "| asym40 | ce | 0 | 0.520 |" in output, output


@pytest.mark.backends("tensorflow", reason="it times the command, whose backend its own environment picks")
def test_cli_startup_benchmark_times_each_command():
    output = run_benchmark("cli_startup.py", "--repeats", 1)
    rows = output.strip().splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["--help", "list", "show", "run"]
    assert all(float(row.split()[-1]) > 0 for row in rows)
