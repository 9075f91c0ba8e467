"""Atomic writes (a reader never sees a half-written file, and a failure leaves none), and
reading a CSV as text with one-line errors."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MESSAGE_LIMIT = 200  # characters of a file's content quoted in an error message


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    The temporary file keeps the suffix of `path`, so writers that pick a format from
    the suffix (PIL, pandas) behave as for the final name. On an exception the temporary
    file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file private (0600); give it the permissions that a plain
        # open() would have given it under the user's umask.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def remove_interrupted_writes(folder: str | Path) -> list[Path]:
    """Delete what `atomic_path` writes left in `folder` when their process was killed
    (``.<stem>.<random><suffix>``): no writer may be at work in `folder`, as when a run
    starts or resumes there. Returns the files removed."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.iterdir():
            if _TEMPORARY.match(path.name) and path.is_file():
                path.unlink()
                removed.append(path)
    return removed


# `atomic_path`'s temporary names: "." + the stem + "." + mkstemp's 8 random characters +
# the suffix (".last.k2j4_x9a.pt")
_TEMPORARY = re.compile(r"^\.[^.].*\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def check_not_an_input(out: str | Path, inputs: Iterable[str | Path], command: str, *,
                       folder: bool = True) -> None:
    """Refuse an output that would replace an input: `out` is one of `inputs`, or (a
    `folder` the command replaces or writes into) holds one of them. Inputs are never
    modified, deleted or written over."""
    from boneaug.errors import BoneaugError

    # plain string paths (no file-system call per input: a manifest names thousands and
    # `classify` runs this for every classifier of an experiment); the output both as
    # written and with its links resolved
    targets = {os.path.abspath(out), str(Path(out).resolve())}
    for source in inputs:
        path = os.path.abspath(source)
        inside = folder and any(path.startswith(t.rstrip(os.sep) + os.sep) for t in targets)
        if path in targets or inside:
            how = "is" if path in targets else "holds"
            raise BoneaugError(f"{out}: --out {how} the input {source}; `boneaug {command}` "
                               "would replace it: choose another --out")


def check_out_dir(out_dir: str | Path, command: str) -> None:
    """Refuse an output folder that holds anything but an earlier run of `command`.

    An output folder is ours to replace only if it is empty or its ``run.json`` names
    `command`; anything else may be someone's data, and is never written into.
    """
    from boneaug.errors import BoneaugError

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BoneaugError(f"{out_dir}: exists and is not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    found = None
    run_file = out_dir / "run.json"
    if run_file.is_file():
        try:
            found = json.loads(run_file.read_text(encoding="utf-8")).get("command")
        except (json.JSONDecodeError, OSError, AttributeError):
            found = None
    if found != command:
        raise BoneaugError(f"{out_dir}: folder is not empty and is not an earlier "
                           f"`boneaug {command}` output (no run.json of it); choose an empty "
                           "or new folder")


def read_csv_text(path: str | Path, what: str, error: type[Exception] | None = None) -> Any:
    """A CSV as a pandas table of strings (no NA guessing: "NA" and "007" stay as written).

    A missing or unreadable file raises `error` (default `BoneaugError`) in one line that
    names the file and `what` it should have been ("manifest", "predictions").
    """
    import pandas as pd

    from boneaug.errors import BoneaugError

    error = error or BoneaugError
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder; give the {what} CSV file")
    if not path.is_file():
        raise error(f"{path}: no such {what} file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            csv.Error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{path}: not a readable {what} CSV ({short(reason)})") from None
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise error(f"{path}: column {short(twice[0])!r} appears more than once in the header "
                    f"of this {what} CSV; keep one")
    return table


def short(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` cut to `limit` characters with an ellipsis: a message quoting a file's
    content stays one readable line, whatever that content holds."""
    text = str(text).replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"
