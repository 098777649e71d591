"""The sweep: one papermill-executed notebook per alpha, one results file per run.

    python -m kdutils.sweep --profile default

Its work is one Ray task graph (`kdutils.graph`): the teachers, then the students (trained
together, `--trainer`), then one page per alpha: `notebooks/distill.md`, executed into the
book page `book/runs/<profile>/alpha_*.ipynb`, reports the runs stored in
`results/<profile>/runs/alpha_*_seed*.json`. Every writer is atomic and a rerun skips what is
done, so a killed sweep loses only the tasks in flight.

    python -m kdutils.sweep --profile smoke --study all

runs the studies beyond the report, each condition in its own executed page. With no
`--address` (nor $RAY_ADDRESS) Ray starts locally for the run and uses this machine's cores;
`--address ray://HEAD:10001` runs the same graph on a cluster (`notebooks/cluster.md`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from kdutils.profiles import PROFILES, Profile, alpha_slug, get_profile
from kdutils.results import ROOT, portable, results_dir

NOTEBOOK = ROOT / "notebooks" / "distill.md"
STUDY_NOTEBOOK = ROOT / "notebooks" / "study_run.md"
PAGES = ROOT / "book" / "runs"
# Kernels started side by side (pages run in parallel) can race for a free TCP port, and one
# then dies before running a cell ("Address already in use"); such a page is started again.
KERNEL_START_ATTEMPTS = 3


def page_path(pages: Path, profile: Profile, alpha: float) -> Path:
    return Path(pages) / profile.name / f"{alpha_slug(alpha)}.ipynb"


def is_done(profile: Profile, alpha: float, directory: Path, pages: Path) -> bool:
    """True when every seed of `alpha` has a matching result and its page exists."""
    from kdutils.experiment import load_run

    return page_complete(page_path(pages, profile, alpha)) and all(
        load_run(profile, alpha, seed, directory) for seed in profile.seeds
    )


def pending_alphas(profile: Profile, alphas, directory: Path, pages: Path) -> list[float]:
    """The alphas of `alphas` whose runs or page are missing: what the sweep would execute."""
    return [a for a in alphas if not is_done(profile, a, directory, pages)]


def pending_teachers(profile: Profile, directory: Path) -> list[int]:
    """The teacher seeds whose teacher is not cached for this config: the sweep would train
    them."""
    from kdutils.teacher_cache import load_teacher

    return [s for s in profile.teacher_seeds() if load_teacher(profile, s, directory) is None]


def page_complete(page: Path) -> bool:
    """Whether `page` is a complete executed page: it parses and validates as a notebook, and
    every code cell ran without an error. A page that is there but fails (a truncated or
    hand-edited file, a run that died) gets a `CacheWarning` naming it and is run again."""
    import nbformat

    from kdutils.results import unusable

    if not Path(page).exists():
        return False
    try:
        notebook = nbformat.read(page, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # nbformat raises several types for a broken file
        unusable(page, f"not a valid notebook ({type(error).__name__}: {error})")
        return False
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if not code or any(cell.get("execution_count") is None for cell in code):
        unusable(page, "incomplete: a code cell never ran")
        return False
    if any(o.get("output_type") == "error" for cell in code for o in cell.get("outputs", [])):
        unusable(page, "a code cell failed")
        return False
    return True


def notebook_parameters(profile: Profile, alpha: float) -> dict:
    """The parameters-cell values that make the notebook run exactly `profile` at `alpha`."""
    fields = ("temperature", "seeds", "epochs", "dataset", "train_size", "noise_rate")
    base = get_profile(profile.name)
    changed = {k: getattr(profile, k) for k in fields if getattr(profile, k) != getattr(base, k)}
    if base.override(**changed) != profile:
        raise ValueError(f"profile {profile.name!r} differs in a field the notebook cannot set")
    return {"profile": profile.name, "alpha": float(alpha)} | {
        k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()
    }


def execute_alpha(profile: Profile, alpha: float, pages: Path, failed: Path) -> Path:
    """Run the notebook for one alpha with papermill; return the executed page's path."""
    return execute_page(
        NOTEBOOK,
        notebook_parameters(profile, alpha),
        page_path(pages, profile, alpha),
        failed,
        f"Run: α = {alpha:g} ({profile.name} profile)",
    )


def execute_page(notebook_path: Path, parameters: dict, page: Path, failed: Path, title: str):
    """Execute a jupytext notebook with papermill into `page` (atomically); return `page`.

    On failure the partial executed notebook is kept in `failed/` and the error re-raised.
    """
    import jupytext
    import nbformat
    import papermill

    page.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(notebook_path)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "source.ipynb", Path(tmp) / page.name
        nbformat.write(notebook, source)
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                executed = papermill.execute_notebook(
                    str(source),
                    str(output),
                    parameters=parameters,
                    cwd=str(notebook_path.parent),
                    kernel_name="python3",
                    progress_bar=False,
                )
                break
            except Exception as error:
                if attempt < KERNEL_START_ATTEMPTS and not _ran_any_cell(output):
                    print(f"  kernel never ran a cell ({error}); starting another", flush=True)
                    continue
                _keep_failed(output, failed / page.name)
                raise
    _retitle(executed, title)
    # papermill records its temporary files; the page keeps where it really came from
    executed.metadata.papermill.update(
        input_path=portable(notebook_path), output_path=portable(page)
    )
    partial = page.with_name(f".{page.name}.tmp")
    nbformat.write(executed, partial)
    os.replace(partial, page)  # atomic: a page on disk is always a complete run
    return page


def _ran_any_cell(output: Path) -> bool:
    """Whether papermill's output notebook shows a cell executed (False if there is none)."""
    import nbformat

    if not output.exists():
        return False
    cells = nbformat.read(output, as_version=4).cells
    return any(c.get("execution_count") is not None for c in cells if c.cell_type == "code")


def _keep_failed(output: Path, kept: Path) -> None:
    """Move the partial executed notebook of a failed run into `failed/` for a look."""
    if output.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(output, kept)
        print(f"  failed; partial executed notebook: {kept}", flush=True)


def _retitle(notebook, title: str) -> None:
    """Give the executed page its own title, so each run has a distinct entry in the book."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            _, _, rest = cell.source.lstrip().partition("\n")
            cell.source = f"# {title}\n{rest}"
            return


def train_teacher(profile: Profile, seed: int, directory: Path) -> str:
    """Train (or load) the teacher of `seed` of `profile` in `directory`; return a log line."""
    from kdutils.teacher_cache import get_teacher

    start = time.perf_counter()
    teacher = get_teacher(profile, seed, directory)
    return (
        f"teacher seed {seed}: test accuracy {teacher.record['test_accuracy']:.4f} "
        f"({time.perf_counter() - start:.0f} s)"
    )


def fused_seeds(profile: Profile, todo, seeds, directory: Path) -> None:
    """Train the alphas `todo` of each of `seeds` in turn, a seed's students in one
    `FusedDistiller` that this process compiles once and reuses for every seed
    (`kdutils.experiment.student_model`)."""
    from kdutils.experiment import run_students

    for seed in seeds:
        start = time.perf_counter()
        run_students(profile, todo, seed, directory, fused=True)
        seconds = time.perf_counter() - start
        print(
            f"fused: {len(todo)} students of seed {seed} trained together in {seconds:.0f} s",
            flush=True,
        )


def set_threads(threads: int | None) -> None:
    """Give TensorFlow `threads` intra- and inter-op threads in this process (no-op for None,
    another backend, or a process whose TensorFlow already started)."""
    import keras

    if threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # already set in this worker process
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)


def valid_alphas(alphas: list[float]) -> list[float]:
    """The alphas in [0, 1]; a page fails on any other, with the error on the page."""
    return [a for a in alphas if 0.0 <= a <= 1.0]


def kernel_environment(profile: Profile, results_root) -> Path:
    """Point notebook kernels at this results root and this checkout; return the results dir."""
    directory = results_dir(profile.name, results_root)
    os.environ["KDUTILS_RESULTS_DIR"] = str(directory.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    return directory


def study_page_path(pages: Path, profile: Profile, study: str, condition: str) -> Path:
    return Path(pages) / profile.name / f"{study}-{condition}.ipynb"


def pending_conditions(profile: Profile, study: str, results_root=None, pages: Path = PAGES):
    """The conditions of `study` whose records or page are missing: what would be executed."""
    from kdutils.studies import get_study, study_dir

    module = get_study(study)
    return [
        c
        for c in module.conditions(profile)
        if not (
            page_complete(study_page_path(pages, profile, study, c))
            and module.is_done(profile, c, study_dir(profile, study, c, results_root))
        )
    ]


def execute_condition(profile: Profile, study: str, condition: str, pages: Path, failed: Path):
    """Run `notebooks/study_run.md` for one condition of `study`; return the executed page."""
    from kdutils.studies import get_study

    return execute_page(
        STUDY_NOTEBOOK,
        {"profile": profile.name, "study": study, "condition": condition},
        study_page_path(pages, profile, study, condition),
        failed,
        f"Run: {get_study(study).TITLE}, {condition} ({profile.name} profile)",
    )


def condition_teachers(profile: Profile, study: str, condition: str) -> list[tuple]:
    """The (profile, seed, directory) of each teacher a condition's page will ask the teacher
    cache for and may share with other pages: the teachers of its variant where the study
    reruns the sweep on one (`grid.run`), else those the study names (`teachers`, as audit
    and calibration do for the profile's own), else none (`chained`). The page gets the
    profile's name only, so its teachers are those of the named profile."""
    from kdutils.studies import get_study, grid

    module, named = get_study(study), get_profile(profile.name)
    if hasattr(module, "teachers"):
        return module.teachers(named, condition)
    if not hasattr(module, "variant"):
        return []
    return grid.teachers(module.variant(named, condition))


def chained(study: str) -> bool:
    """Whether each condition of `study` must run after the previous one: where the study
    names no teachers for the graph to train first (`condition_teachers`), its pages train
    their own (hinton's and the CIFAR-10 studies' `teacher` condition, which the later ones
    read), so they run in order. The conditions of the other studies are independent."""
    from kdutils.studies import get_study

    module = get_study(study)
    return not (hasattr(module, "teachers") or hasattr(module, "variant"))


def log_session(directory: Path, started: str, seconds: float, failures: list[float]) -> None:
    """Append this invocation's wall time to `<results>/sweep.json` (a list of sessions),
    atomically under a lock (`kdutils.results.append_log`): concurrent sweeps lose no entry,
    and a corrupt log is moved aside, never overwritten."""
    from kdutils.distill.repro import environment
    from kdutils.results import append_log

    entry = {
        "started": started,
        "seconds": seconds,
        "failed_alphas": failures,
        "command": command_line(sys.argv),
        "environment": environment(),
    }
    append_log(directory / "sweep.json", entry)


def command_line(argv: list[str]) -> str:
    """The sweep's command as the log stores it: `python -m kdutils.sweep` and its arguments,
    paths relative to the repository (no machine paths in committed files)."""
    args = [portable(a) if os.path.isabs(a) else a for a in argv[1:]]
    return " ".join(["python -m kdutils.sweep", *args])


def alpha_argument(text: str) -> float:
    """An --alphas value: a number in [0, 1], or an argparse error that says so."""
    from kdutils.distill.losses import check_alpha

    try:
        return check_alpha(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"alpha must be a number in [0, 1], got {text!r}"
        ) from None


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m kdutils.sweep`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument(
        "--alphas", type=alpha_argument, nargs="+", help="a subset of the profile's alphas"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="override the profile's seeds")
    parser.add_argument("--train-size", type=int, help="override the profile's train_size")
    parser.add_argument("--epochs", type=int, help="override the profile's epochs")
    parser.add_argument("--results-dir", help="results root (default: results/)")
    parser.add_argument("--pages-dir", default=str(PAGES), help="where executed pages go")
    parser.add_argument("--rerun", action="store_true", help="delete this profile's results first")
    parser.add_argument("--keep-going", action="store_true", help="continue after a failure")
    parser.add_argument(
        "--fused", action="store_true", help="train all alphas of a seed in one fused model"
    )
    parser.add_argument(
        "--trainer",
        choices=("auto", "batched", "fused", "separate"),
        default="auto",
        help="how students train: all (alpha, seed) batched together, the alphas of a seed "
        "fused, one per run inside its page, or (default) batched or fused, whichever is "
        "faster on this backend and device",
    )
    parser.add_argument(
        "--study",
        nargs="+",
        help="run these studies (kdutils.studies.STUDIES, or 'all') instead of the alpha sweep",
    )
    parser.add_argument(
        "--address",
        help="the Ray cluster to join, e.g. ray://HEAD:10001 (default: $RAY_ADDRESS, else a "
        "local Ray started for this run on this machine's cores)",
    )
    parser.add_argument(
        "--check-data",
        choices=("sweep", "chapters", "book"),
        help="only check, in seconds, that every dataset `make sweep`, the chapters or both "
        "would need can be found (kdutils.preflight); exit 1 naming the ways to provide it",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    if args.study and any(v is not None for v in (args.seeds, args.train_size, args.epochs)):
        command.error(
            "--seeds, --train-size and --epochs change the alpha sweep's runs; a study's pages "
            "run the profile as it is named, so they cannot be combined with --study"
        )
    profile = get_profile(args.profile).override(
        seeds=args.seeds, train_size=args.train_size, epochs=args.epochs
    )
    if args.check_data:
        from kdutils.preflight import check_data

        return check_data(profile, args.check_data, args.results_dir, Path(args.pages_dir))
    if args.rerun:
        shutil.rmtree(results_dir(profile.name, args.results_dir), ignore_errors=True)
        shutil.rmtree(Path(args.pages_dir) / profile.name, ignore_errors=True)
    names = None
    if args.study:
        from kdutils.studies import available_studies

        names = available_studies() if args.study == ["all"] else args.study
    return run_and_log(profile, names, args)


def run_and_log(profile: Profile, names: list[str] | None, args: argparse.Namespace) -> int:
    """Run the alpha sweep (`names` None) or the studies `names`; log the session in
    `<results>/sweep.json` only if something was trained or executed, so a build from
    committed results leaves the repository as it was."""
    from kdutils.preflight import pending_work

    pages = Path(args.pages_dir)
    if not pending_work(profile, names, args.alphas, args.results_dir, pages):
        n = len(args.alphas or profile.alphas) if names is None else len(names)
        what = "alphas" if names is None else "studies"
        print(
            f"{profile.name}: {n} of {n} {what} already done (every run stored, every page "
            "present): nothing to train or execute, no session logged",
            flush=True,
        )
        return 0
    start, started = time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    from kdutils.graph import run_graph  # Ray is imported only when there is work

    failures = run_graph(profile, names, args)
    seconds = time.perf_counter() - start
    print(f"sweep {profile.name} finished in {seconds:.0f} s", flush=True)
    log_session(results_dir(profile.name, args.results_dir), started, seconds, failures)
    if failures:
        print(f"failed: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
