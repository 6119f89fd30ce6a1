"""Body models (anny default, SMPL-X optional), linear blend skinning, pose and expression spaces.

Public API: `BodyModel`, `BodyParams`, `BodyOutput` (core.body.model / records), `BodyAsset` and
`load_body_asset` (core.body.asset), `sample_surface` (core.body.surface), the LBS functions in
core.body.lbs, and `BODY_PART_NAMES` (core.body.parts).
"""

from core.body.asset import BodyAsset, load_body_asset
from core.body.model import BodyModel
from core.body.parts import BODY_PART_NAMES
from core.body.records import BodyOutput, BodyParams
from core.body.surface import sample_surface

__all__ = [
    "BODY_PART_NAMES",
    "BodyAsset",
    "BodyModel",
    "BodyOutput",
    "BodyParams",
    "load_body_asset",
    "sample_surface",
]
