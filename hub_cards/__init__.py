"""Jinja templates of the model and dataset cards, installed as package data.

`huggingface_hub.ModelCard.from_template` / `DatasetCard.from_template` render them (one mechanism for every card);
`template(name)` reads one through `importlib.resources`, so it is found in a source checkout and in an installed
wheel alike.
"""

from importlib.resources import files


def template(name: str) -> str:
    """The text of the template `name` (e.g. "model_card_template.md")."""
    path = files(__name__).joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"card template {name!r} is not in the hub_cards package ({files(__name__)})")
    return path.read_text(encoding="utf-8")
