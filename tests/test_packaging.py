"""The installed wheel (not the editable checkout) carries everything a run needs, e.g. the card templates.

Issue 10: with a non-editable install the model-card template was looked up next to `train_hf.py` and every run
ended in FileNotFoundError. The wheel is built from a copy of the tracked sources (the checkout stays clean) and
installed into a folder; a fresh process that sees only that folder and site-packages renders the model and dataset
cards from the templates found through importlib.resources.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fresh_process import run_without_package

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "train_hf.py", "modeling_avcpnet", "datasets_emotions", "hub_cards")


@pytest.mark.smoke
def test_wheel_ships_the_card_templates_and_renders_cards_when_installed(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("avcpnet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {path.name for path in (REPO / "hub_cards").glob("*_template.md")}
    assert {"model_card_template.md", "dataset_card_template.md"} <= templates
    assert {f"hub_cards/{name}" for name in templates} <= names
    assert {"train_hf.py", "modeling_avcpnet/training/trainer.py", "modeling_avcpnet/labels.py"} <= names

    # Install (no dependencies: they are this interpreter's site-packages) into a target folder.
    target = tmp_path / "installed"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    script = f"""
        import sys
        sys.path.insert(0, {str(target)!r})
        import hub_cards, modeling_avcpnet.training.model_card
        assert hub_cards.__file__.startswith({str(target)!r}), hub_cards.__file__
        from datasets_emotions.cards import generic_card, sample_card
        assert "# eMotions sample (generated)" in sample_card().content
        assert "Labels: a, b." in generic_card("demo", ["a", "b"]).content
        assert "{{{{ card_data }}}}" in hub_cards.template("model_card_template.md")
        print("TEMPLATES FOUND")
    """
    done = run_without_package(script, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TEMPLATES FOUND" in done.stdout


def test_committed_dataset_cards_are_the_renders_of_the_templates(tmp_path):
    from datasets_emotions.cards import write_cards

    for path in write_cards(str(tmp_path)):
        name = Path(path).name
        assert Path(path).read_text() == (REPO / "hub_cards" / name).read_text(), f"re-render hub_cards/{name}"
