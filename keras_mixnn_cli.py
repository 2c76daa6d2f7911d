"""`keras-mixnn`: run, show and list recipes, and report on runs, from the command line.

Importing `keras_mixnn` imports Keras, which reads `KERAS_BACKEND` once; so
this module sits outside the package and imports it only inside the commands,
after `--backend` has set `KERAS_BACKEND`. `list` and `show` only read
recipes, which import no Keras: they load them without the package's
`__init__`, so they start no backend at all.
"""

import contextlib
import importlib
import importlib.resources
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import types
import warnings

import click

BACKENDS = ("tensorflow", "jax", "torch")
_BUNDLED_PACKAGE = "keras_mixnn.bundled_recipes"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-mixnn", prog_name="keras-mixnn")
@click.pass_context
def main(context):
    """Train classifiers on noisy labels with MixNN, from recipe files.

    \b
    Example:
      keras-mixnn list
      keras-mixnn run recipes/digits_sym40.py --set epochs=20 --output runs/digits
      keras-mixnn report runs/digits
    """
    # TensorFlow's INFO and WARNING lines, unless the user chose a level (or `run --verbose` takes it back).
    context.obj = {"quieted_tensorflow": "TF_CPP_MIN_LOG_LEVEL" not in os.environ}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _set_option(function):
    return click.option(
        "--set",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Change a recipe field (repeatable), e.g. --set epochs=5 --set method=ce.",
    )(function)


@main.command()
@click.argument("recipe_name", metavar="RECIPE")
@_set_option
@click.option("--backend", type=click.Choice(BACKENDS), help="Keras backend; defaults to KERAS_BACKEND or Keras' own.")
@click.option(
    "--output",
    type=click.Path(path_type=pathlib.Path),
    help="Run directory; defaults to runs/RECIPE (runs/RECIPE-2, ... when taken).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=pathlib.Path),
    help="Read the dataset from here instead of downloading it (CIFAR: the official python batches or an .npz).",
)
@click.option("--seed", type=int, help="Seed of the run (same as --set seed=N).")
@click.option(
    "--devices",
    type=int,
    help="Train data-parallel on N devices (same as --set devices=N); JAX and TensorFlow. "
    "Without accelerators the CPU is split into N devices.",
)
@click.option("--overwrite", is_flag=True, help="Replace the run directory if it exists.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run in --output from its last complete epoch (same recipe and options).",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Also show the backend's own log: its start-up lines and TensorFlow's INFO and WARNING messages.",
)
def run(recipe_name, assignments, backend, output, data_dir, seed, devices, overwrite, resume, verbose):
    """Train the run a recipe describes and write its run directory.

    RECIPE is a recipe file or the name of a bundled recipe (see `list`).

    \b
    Example:
      keras-mixnn run recipes/cifar10_sym40.py --backend jax --data-dir ~/data/cifar-10-batches-py
      keras-mixnn run digits_sym40 --set epochs=20 --set method=ce --output runs/digits-ce
      keras-mixnn run recipes/cifar10_sym40.py --output runs/cifar10_sym40 --resume   # after a crash
      keras-mixnn run recipes/cifar100_sym80.py --backend jax --devices 8
    """
    _select_backend(backend)
    if resume and output is None:
        raise click.ClickException("--resume needs --output RUN_DIR: the run directory to continue.")
    if resume and overwrite:
        raise click.ClickException("Pass either --resume (continue the run) or --overwrite (replace it), not both.")
    if verbose and click.get_current_context().find_root().obj["quieted_tensorflow"]:
        del os.environ["TF_CPP_MIN_LOG_LEVEL"]
    with contextlib.nullcontext() if verbose else _without_native_start_up_lines():
        path, recipe = _resolve(recipe_name, assignments, seed, devices)
        _prepare_devices(recipe.devices)
        from keras_mixnn import run_directory, runner

        _start_backend()

    run_dir = output if output is not None else run_directory.next_free_dir(pathlib.Path("runs") / path.stem)
    data = _load_data(recipe, data_dir, run_dir, overwrite, resume)
    click.echo(f"{path.stem}: {recipe.dataset}, {data.source}; run directory {run_dir}")
    shortfall = recipe.correction_shortfall()
    if shortfall:
        click.echo(f"Warning: {shortfall}.", err=True)
    record = {"recipe_file": str(path), "command": " ".join(["keras-mixnn", *sys.argv[1:]])}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Label correction runs in")  # Said above, once.
            metrics = runner.run(recipe, run_dir, data, overwrite=overwrite, resume=resume, record=record)
    except (ValueError, TypeError, OSError, FloatingPointError) as error:
        raise _error(error) from None
    click.echo(f"done in {metrics['train_seconds']:.0f} s: {_summary(metrics)}; written to {run_dir}")


@main.command()
@click.argument("recipe_name", metavar="RECIPE")
@_set_option
@click.option("--seed", type=int, help="Seed of the run (same as --set seed=N).")
def show(recipe_name, assignments, seed):
    """Print the configuration a recipe resolves to, overrides applied.

    \b
    Example:
      keras-mixnn show recipes/cifar100_sym80.py --set backbone=cnn --set epochs=3
    """
    with _recipes_without_keras():
        from keras_mixnn import recipe as recipe_lib

        path, recipe = _resolve(recipe_name, assignments, seed)
        click.echo(f"# {path}: {recipe_lib.describe(path)}")
        changed = _changed(assignments, seed)
        for name, value in recipe.to_dict().items():
            click.echo(f"{name} = {value!r}" + ("  # --set" if name in changed else ""))
        click.echo(_correction_line(recipe))


def _correction_line(recipe):
    if recipe.method != "mixnn" or not recipe.label_correction:
        return "# label correction: none"
    from keras_mixnn import correction_schedule

    if not recipe.correction_changes_labels:
        return (
            f"# label correction: {recipe.correcting_epochs} correcting epochs of {recipe.epochs}; targets soften, "
            "labels stay (correction_changes_labels=False)"
        )
    needed = correction_schedule.corrections_to_leave_label(recipe.momentum)
    line = (
        f"# label correction: {recipe.correcting_epochs} correcting epochs of {recipe.epochs}; a target can leave "
        f"its given label after {needed} (momentum {recipe.momentum})"
    )
    return line + ("" if recipe.correcting_epochs >= needed else ": too few, no label will change")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=pathlib.Path))
@click.option(
    "--embedding",
    type=click.Choice(["tsne", "pca"]),
    default="tsne",
    show_default=True,
    help="How the features are drawn in 2-D: t-SNE (as in the paper) or PCA (faster).",
)
@click.option("--seed", type=int, help="Seed of the embedding; defaults to the run's seed.")
def report(run_dir, embedding, seed):
    """Write RUN_DIR/report.html: a run's pictures and figures, on one page.

    Reads only the run's files: nothing is trained or predicted again.

    \b
    Example:
      keras-mixnn run recipes/digits_sym40.py --output runs/digits
      keras-mixnn report runs/digits
    """
    from keras_mixnn.report import write_report

    try:
        written = write_report(run_dir, embedding=embedding, seed=seed)
    except (ValueError, TypeError, OSError) as error:
        raise _error(error) from None
    for line in written.skipped:
        click.echo(f"not drawn: {line}")
    click.echo(f"wrote {written.path} with {len(written.figures)} pictures (also as PNG files beside it)")


@main.command(name="list")
def list_recipes():
    """List the bundled recipes, one line each.

    \b
    Example:
      keras-mixnn list
    """
    with _recipes_without_keras():
        from keras_mixnn import recipe as recipe_lib

        recipes = _bundled_recipes()
        width = max(len(name) for name in recipes)
        for name, path in recipes.items():
            click.echo(f"{name:<{width}}  {recipe_lib.describe(path)}")


def _summary(metrics):
    parts = [
        f"{key[: -len('_top1')]} top-1 {value:.3f}, top-5 {metrics[key[: -len('_top1')] + '_top5']:.3f}"
        for key, value in metrics.items()
        if key.endswith("_top1")
    ]
    if metrics["label_accuracy"] is not None:
        parts.append(
            f"training labels right {metrics['label_accuracy']:.3f} (given {metrics['given_label_accuracy']:.3f})"
        )
    if metrics["detection_auc"] is not None:
        parts.append(f"detection AUC {metrics['detection_auc']:.3f}")
    return ", ".join(parts)


def _resolve(recipe_name, assignments, seed, devices=None):
    from keras_mixnn import recipe as recipe_lib

    try:
        path = _recipe_path(recipe_name)
        recipe = recipe_lib.apply_overrides(recipe_lib.load_recipe(path), assignments)
        options = {name: value for name, value in (("seed", seed), ("devices", devices)) if value is not None}
        if options:
            recipe = recipe.replace(**options)
    except (ValueError, TypeError) as error:
        raise _error(error) from None
    return path, recipe


def _changed(assignments, seed):
    names = {assignment.partition("=")[0].strip() for assignment in assignments}
    return names | ({"seed"} if seed is not None else set())


def _recipe_path(name):
    path = pathlib.Path(name)
    if path.suffix == ".py" or path.is_file():
        return path
    recipes = _bundled_recipes()
    if name not in recipes:
        raise ValueError(f"{name!r} is neither a recipe file nor a bundled recipe; bundled: {', '.join(recipes)}.")
    return recipes[name]


def _bundled_recipes():
    folder = importlib.resources.files(_BUNDLED_PACKAGE)
    files = sorted(entry for entry in folder.iterdir() if entry.name.endswith(".py") and not entry.name.startswith("_"))
    return {pathlib.Path(entry.name).stem: pathlib.Path(str(entry)) for entry in files}


@contextlib.contextmanager
def _recipes_without_keras():
    """Lets recipes load through `keras_mixnn.recipe` without the package's `__init__`.

    The package imports Keras (so that `import keras_mixnn` registers
    `MixNNModel` for `keras.saving.load_model`), and Keras a backend: seconds,
    for commands that only read recipes, which import no Keras. A bare package
    stands in meanwhile; a recipe that asks it for anything else (`presets`,
    `MixNNModel`) gets the real package. Unless that happened, the stand-in and
    the submodules loaded under it are removed after, so that a later
    `import keras_mixnn` in this process is an ordinary one.
    """
    spec = importlib.util.find_spec("keras_mixnn")
    if "keras_mixnn" in sys.modules or spec is None:
        yield
        return
    before = set(sys.modules)
    bare = types.ModuleType("keras_mixnn")
    bare.__path__ = list(spec.submodule_search_locations)

    def package_attribute(name):
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"keras_mixnn.{name}") is not None:
            return importlib.import_module(f"keras_mixnn.{name}")  # A submodule, loaded under the stand-in.
        del sys.modules["keras_mixnn"]
        return getattr(importlib.import_module("keras_mixnn"), name)

    bare.__getattr__ = package_attribute
    sys.modules["keras_mixnn"] = bare
    try:
        yield
    finally:
        if sys.modules.get("keras_mixnn") is bare:
            for name in set(sys.modules) - before:
                if name == "keras_mixnn" or name.startswith("keras_mixnn."):
                    del sys.modules[name]


# absl's C++ log ("I0000 00:00:1796205388.169331   12827 cudart_stub.cc:31] ...") and its preamble, and
# TensorFlow's own ("2024-05-01 12:00:00.000000: I tensorflow/core/util/port.cc:113] ...").
_NATIVE_LOG_LINE = re.compile(
    rb"(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\]"
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\))"
)
# The second line of TensorFlow's CPU-instruction notice, the one record known to span two lines.
_NATIVE_LOG_CONTINUATION = re.compile(rb"To enable the following instructions: ")


@contextlib.contextmanager
def _without_native_start_up_lines():
    """Drops the lines a backend's C++ runtime logs to stderr as it starts; passes on every other line.

    TensorFlow's CUDA probes and oneDNN notice are written by absl before it
    reads `TF_CPP_MIN_LOG_LEVEL`, straight to file descriptor 2, so Python
    cannot filter them. Meanwhile the descriptor feeds a small filter process
    that writes what it keeps to the real stderr as it comes, so that a crash
    still shows what led to it.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError):  # No stderr to filter.
        yield
        return
    code = "import keras_mixnn_cli; keras_mixnn_cli._filter_native_log()"
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=saved) as filter_process:
        os.dup2(filter_process.stdin.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            filter_process.stdin.close()  # The filter reads to the end and exits; `with` waits for it.


def _filter_native_log(source=None, target=None):
    """Copies `source` (stdin) to `target` (stdout) line by line, less native log records; a fatal one is kept."""
    source = source or sys.stdin.buffer
    target = target or sys.stdout.buffer
    dropping = False
    for line in source:
        if _NATIVE_LOG_LINE.match(line):
            dropping = not line.startswith(b"F")  # A fatal record explains the crash that follows: kept.
        elif not (dropping and _NATIVE_LOG_CONTINUATION.match(line)):
            dropping = False
        if not dropping:
            target.write(line)
            target.flush()


def _start_backend():
    """Runs one tiny computation, so that the backend's runtime starts (and says so) now."""
    import keras

    keras.ops.convert_to_numpy(keras.ops.zeros(()))


def _error(error):
    """A `ClickException` with the error's message on one line."""
    return click.ClickException(" ".join(str(error).split()) or type(error).__name__)


def _select_backend(backend):
    if backend is None:
        return
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise click.ClickException(
                f"Keras is already loaded with the {current} backend in this process; set KERAS_BACKEND={backend} "
                "before starting Python instead of --backend."
            )
    os.environ["KERAS_BACKEND"] = backend


def _prepare_devices(num_devices):
    """Without accelerators, shows the backend the CPU as `num_devices` devices.

    Before anything computes: JAX reads XLA_FLAGS when it first looks for
    devices, TensorFlow splits the CPU only before its runtime starts.
    """
    if num_devices <= 1:
        return
    import keras

    if keras.backend.backend() == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={num_devices}".strip()
    elif keras.backend.backend() == "tensorflow":
        from keras_mixnn import _backend

        _backend.split_host_cpu(num_devices)


def _load_data(recipe, data_dir, run_dir, overwrite, resume):
    import keras

    from keras_mixnn import datasets, run_directory

    try:
        if resume:
            recipe = run_directory.recipe_as_run(run_dir, recipe)  # As the run was made; runner.run does the same.
            run_directory.check_resumable(run_dir, recipe, backend=keras.backend.backend())
        else:
            run_directory.check_run_dir(run_dir, overwrite=overwrite)
        return datasets.load(recipe.dataset, data_dir=data_dir, seed=recipe.seed, ilsvrc12_dir=recipe.ilsvrc12_dir)
    except (ValueError, TypeError, OSError) as error:
        raise _error(error) from None
