"""The 28 allergens of Japanese food labelling (食品表示基準), kept in ``allergens.json``.

``mandatory`` are the 特定原材料 that must be labelled; ``recommended`` the 特定原材料に準ずるもの.
"""

import json
from importlib.resources import files

_DATA = json.loads(files(__package__).joinpath("allergens.json").read_text("utf-8"))

MANDATORY_ALLERGENS: tuple[str, ...] = tuple(_DATA["mandatory"])
RECOMMENDED_ALLERGENS: tuple[str, ...] = tuple(_DATA["recommended"])
ALLERGENS: tuple[str, ...] = MANDATORY_ALLERGENS + RECOMMENDED_ALLERGENS
