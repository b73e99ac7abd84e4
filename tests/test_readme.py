"""The README is executable documentation: every fenced ``python`` and ``bash`` block of README.md (and
ARCHITECTURE.md) runs, in order, in a scratch folder, as a newcomer would after the README's two commands.

How a block is treated:

- runnable (the default): python blocks run one after the other in ONE interpreter (a shared namespace, as in a
  notebook); bash blocks run with ``bash -euo pipefail`` in the same folder, in README order between them.
- ``<!-- no-run: REASON -->`` on the line before the fence: the block needs the network, a GPU, data the README
  cannot provide (``/data/...``, downloaded weights), runs for minutes (the main job, the test suite: they are CI
  itself) or serves forever (the demo). Such a block is only checked: python with ``ast.parse`` and every name it
  reads defined by a block above it, an import or a builtin; bash with ``bash -n``, every ``.venv/bin/X`` an
  installed command, every ``-m module`` importable and every repository path it names present.

The scratch folder holds links to the repository's top-level files (``configs/``, ``scripts/``, ``train_hf.py``,
...) and ``.venv`` (the interpreter running this test). The README's own command ``avcpnet sample-clips .`` writes
the clips the examples name (clip.mp4, other.mp4, empty.mp4, talk.mp4, videos/, more/). ``runs/sample``, which
the main job writes, is provided here as a tiny untrained model with the main job's labels (the main job itself
is no-run). A failure names the file and line of the block.

Other branches edit README blocks too: rerun this file after a merge (``pytest tests/test_readme.py``).
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "ARCHITECTURE.md")
LANGUAGES = ("python", "bash")
NO_RUN = re.compile(r"^<!--\s*no-run:\s*(?P<reason>.+?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_+-]*)\s*$")


@dataclass
class Block:
    document: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    no_run: str | None  # the reason, or None for a block that runs

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def extract_blocks(document: str) -> list[Block]:
    """The fenced python and bash blocks of `document`, in order, with their no-run marker."""
    path = REPO / document
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start, lang = index, match["lang"]
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
        previous = next((lines[i].strip() for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = NO_RUN.match(previous)
        if lang in LANGUAGES:
            blocks.append(Block(document, start + 1, lang, "\n".join(lines[start + 1:end]) + "\n",
                                marker["reason"] if marker else None))
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in extract_blocks(document)]


# ------------------------------------------------------------------------------------------- static checks
def python_names(code: str) -> tuple[set[str], set[str]]:
    """(names the block defines, names it reads before defining them), ignoring attribute access."""
    tree = ast.parse(code)
    defined, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
            defined.update(arg.arg for arg in ast.walk(node.args) if isinstance(arg, ast.arg))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            defined.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
        elif isinstance(node, ast.Lambda):
            defined.update(arg.arg for arg in ast.walk(node.args) if isinstance(arg, ast.arg))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined:
            read.add(node.id)
    return defined, read


# PATH as a newcomer's shell has it: without the environment's bin folder (the README says .venv/bin/X)
OUTSIDE_VENV = os.pathsep.join(part for part in os.environ.get("PATH", "").split(os.pathsep)
                               if part and Path(part).resolve() != (Path(sys.prefix) / "bin").resolve())
REPO_PATH = re.compile(r"^(configs|scripts|hub_cards|benchmarks|docs|tests)/[\w./*-]+$|^train_hf\.py$")


def check_bash(block: Block) -> list[str]:
    """`bash -n`, and every command, module and repository path the block names exists."""
    problems = []
    syntax = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
    if syntax.returncode:
        problems.append(f"bash -n: {syntax.stderr.strip()}")
    code = re.sub(r"\\\n", " ", block.code)
    for line in code.splitlines():
        line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        command = next((word for word in words if "=" not in word), None)  # after VAR=value assignments
        if command and not command.startswith((".", "/", "$")) and not shutil.which(command, path=OUTSIDE_VENV):
            problems.append(f"{command}: not on PATH outside the environment (write .venv/bin/{command}?)")
        for position, word in enumerate(words):
            if word.startswith(".venv/bin/"):
                name = word[len(".venv/bin/"):]
                if not (Path(sys.prefix) / "bin" / name).exists():
                    problems.append(f"{word}: not a command of the environment ({Path(sys.prefix) / 'bin'})")
            elif word == "-m" and position + 1 < len(words):
                module = words[position + 1]
                if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
                    problems.append(f"-m {module}: no such module")
            elif REPO_PATH.match(word) and "*" not in word and not (REPO / word).exists():
                problems.append(f"{word}: no such file in the repository")
    return problems


def test_blocks_parse_and_name_what_exists():
    """Every block, run or not: valid syntax, names defined above, commands/modules/paths that exist."""
    blocks = all_blocks()
    assert len(blocks) > 10, "README.md has no fenced python/bash blocks?"
    defined = set(dir(builtins))
    problems = []
    for block in blocks:
        if block.lang == "python":
            try:
                block_defined, read = python_names(block.code)
            except SyntaxError as error:
                problems.append(f"{block.where}: {error}")
                continue
            missing = sorted(read - defined - block_defined)
            if missing:
                problems.append(f"{block.where}: names defined by no block above: {missing}")
            defined |= block_defined
        else:
            problems += [f"{block.where}: {problem}" for problem in check_bash(block)]
    assert not problems, "\n".join(problems)


def test_no_run_blocks_say_why():
    """A block that is not run is marked with its reason; the main job and the test suite are among them (they are
    CI itself), and most blocks run."""
    blocks = all_blocks()
    skipped = [block for block in blocks if block.no_run]
    assert all(len(block.no_run) > 5 for block in skipped)
    assert any("train_hf.py configs/sample.yaml" in block.code for block in skipped)
    assert any("pytest" in block.code for block in skipped)
    assert len(skipped) < len(blocks)


# ------------------------------------------------------------------------------------------- running them
DRIVER = textwrap.dedent('''
    import json, os, subprocess, sys, time, traceback
    blocks = json.load(open(sys.argv[1]))
    namespace = {"__name__": "__readme__"}
    for block in blocks:
        start = time.time()
        print(f"--- {block['where']} ({block['lang']})", flush=True)
        if block["lang"] == "python":
            try:
                exec(compile(block["code"], block["where"], "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                print(f"FAILED {block['where']}", flush=True)
                sys.exit(1)
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]])
            if done.returncode:
                print(f"FAILED {block['where']}: exit status {done.returncode}", flush=True)
                sys.exit(1)
        print(f"--- {block['where']} done in {time.time() - start:.1f} s", flush=True)
''')


def make_scratch(folder: Path) -> None:
    """Links to the repository's files and the environment; runs/sample as the main job would leave it."""
    for entry in REPO.iterdir():
        if entry.name in (".git", ".venv", "runs") or entry.name.startswith((".pytest", "__pycache__")):
            continue
        (folder / entry.name).symlink_to(entry)
    (folder / ".venv").symlink_to(Path(sys.prefix))
    from modeling_avcpnet import AVCPNetConfig, AVCPNetForVideoClassification, AVCPNetProcessor
    from modeling_avcpnet.labels import EMOTIONS_LABELS, EMOTIONS_POLARITY
    from modeling_avcpnet.pipeline_avcpnet import save_for_pipeline

    labels = list(EMOTIONS_LABELS)
    config = AVCPNetConfig.tiny(id2label=dict(enumerate(labels)),
                                label2polarity={label: EMOTIONS_POLARITY[label] for label in labels})
    save_for_pipeline(AVCPNetForVideoClassification(config).eval(), AVCPNetProcessor.from_model_config(config),
                      folder / "runs" / "sample")


def test_readme_blocks_run_in_order(tmp_path):
    """The runnable blocks, in README order, in a scratch folder; the first failure names its block."""
    blocks = [block for block in all_blocks() if not block.no_run]
    make_scratch(tmp_path)
    (tmp_path / "_blocks.json").write_text(json.dumps(
        [{"where": block.where, "lang": block.lang, "code": block.code} for block in blocks]))
    (tmp_path / "_driver.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "_driver.py", "_blocks.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    print(done.stdout)  # each block with its time (pytest -s shows it)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]


def test_the_checks_catch_what_the_newcomer_met():
    """Issue 22.1's broken blocks, as they were: a fragment using an undefined class, `hf` off PATH, a config
    path that does not exist."""
    _, read = python_names("from modeling_avcpnet.face_crop_mer2023 import FaceCropper\n"
                           "extractor = MER2023DeepFeatureExtractor.from_pretrained(face_cropper=FaceCropper())\n")
    assert read == {"MER2023DeepFeatureExtractor"}
    problems = check_bash(Block("README.md", 1, "bash", "hf auth login\n.venv/bin/python train_hf.py "
                                "configs/nope.yaml\n.venv/bin/python -m modeling_avcpnet.nope\n", None))
    assert any(problem.startswith("hf: not on PATH") for problem in problems) or shutil.which("hf", path=OUTSIDE_VENV)
    assert "configs/nope.yaml: no such file in the repository" in problems
    assert "-m modeling_avcpnet.nope: no such module" in problems
