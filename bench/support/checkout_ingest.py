"""Run another checkout's ``bench/ingest.py`` (one from before this one's changes, say) in a
throwaway database of the same server, and print the minute-bar table's bytes per row before
its clean-up: the figures to set beside this checkout's own run.

    git worktree add /work/wt_before 874cd72
    .venv/bin/python bench/support/checkout_ingest.py /work/wt_before [--rows N]
    git worktree remove --force /work/wt_before

The other checkout's code is imported (its folder first on sys.path), with this checkout's
var/ (QVP_VAR_DIR), so that it reaches the embedded server already running rather than
starting one of its own; a DATABASE_URL in the environment is used as it is. A bench that
uses the configured database (bench/ingest.py before it made a throwaway one) runs in a
throwaway one here; a later one, which makes its own, is run as it is.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    if len(sys.argv) < 2 or not (Path(sys.argv[1]) / "bench" / "ingest.py").is_file():
        raise SystemExit("usage: checkout_ingest.py CHECKOUT [--rows N]")
    checkout = Path(sys.argv[1]).resolve()
    # Ours, loaded by path before the checkout's folder shadows this one's packages.
    scratch = _load(HERE / "scratch.py", "bench_scratch")
    sizes = _load(HERE / "sizes.py", "bench_sizes")
    os.environ.setdefault("QVP_VAR_DIR", str(ROOT / "var"))
    scratch.name_it("bench_qvp_ingest_checkout")
    sys.argv = [str(checkout / "bench" / "ingest.py"), *sys.argv[2:]]
    sys.path.insert(0, str(checkout))
    bench = _load(checkout / "bench" / "ingest.py", "checkout_bench_ingest")  # django.setup()
    from django.db import connection

    print(f"checkout {checkout}")
    clean_up = getattr(bench, "clean_up", None)
    if clean_up is None:  # a bench that makes its own throwaway database and prints sizes
        bench.main()
        return

    def measured_clean_up(instrument_id: int | None, *args: object, **kwargs: object) -> None:
        if instrument_id is not None:
            with connection.cursor() as cursor:
                print("  " + sizes.describe(cursor, bench.TABLE))
        clean_up(instrument_id, *args, **kwargs)

    setattr(bench, "clean_up", measured_clean_up)  # noqa: B010 - a module's, found at run time
    with scratch.throwaway_database() as name:
        print(f"in the throwaway database {name}")
        bench.main()


if __name__ == "__main__":
    main()
