"""Writing the small file trees of the dataset tests: a copy of a clip, a text file, parents made on the way."""

import os
import shutil


def put(source, path) -> str:
    """Copy ``source`` to ``path`` (making its folders); returns ``path`` as a string."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(source, path)
    return str(path)


def write(path, text: str) -> None:
    """Write ``text`` to ``path`` exactly (no newline translation), making its folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
