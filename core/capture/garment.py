"""The clothing allowance of the body fit (core.capture.shape_fit): one outward offset of the body's surface per body
region, shared by all photos of a person, so that clothes and hair fill the person's outline without swelling the
body shape. It shapes the fit's silhouettes only; the avatar is built on the fitted body."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from core.model.rig import BodyRig
from core.model.tokens import vertex_normals

# Body regions of the clothing allowance: (bone name prefixes, largest allowance in metres): hair and hoods, jackets,
# sleeves, gloves, trousers and skirts, shoes. Every bone of the body is in one region.
GARMENT_REGIONS: dict[str, tuple[tuple[str, ...], float]] = {
    "head": (("head", "neck", "eye"), 0.08),
    "torso": (("root", "pelvis", "spine", "clavicle", "shoulder"), 0.08),
    "arms": (("upperarm", "lowerarm"), 0.06),
    "hands": (("wrist", "finger", "metacarpal"), 0.02),
    "legs": (("upperleg", "lowerleg"), 0.06),
    "feet": (("foot", "toe"), 0.03),
}


def garment_basis(rig: BodyRig) -> Tensor:
    """[V, 3, R] rest offset of each vertex per metre of each region's clothing allowance: the template's outward
    vertex normal, shared between regions by the vertex's skinning weights (so the allowance blends across joints)."""
    names = list(rig.phenotype.bone_names) if rig.phenotype is not None else None
    if names is None:
        raise ValueError("garment_basis needs the body asset's rig (bone names); got a rig without them")
    region = torch.zeros(len(names), len(GARMENT_REGIONS))  # [J, R]
    for j, n in enumerate(names):
        r = next((k for k, (ps, _) in enumerate(GARMENT_REGIONS.values()) if n.startswith(ps)), None)
        if r is None:
            raise ValueError(f"bone {n!r} is in no clothing region")
        region[j, r] = 1.0
    with torch.no_grad():
        v = rig.rest(rig.default_shape[None].to(rig.vertices))[0][0] if rig.num_shape else rig.vertices
        n = vertex_normals(v, rig.faces)  # [V, 3] outward (counter-clockwise faces)
    return n[:, :, None] * (rig.weights.to(v) @ region.to(v))[:, None]  # [V, 3, R]


_BASES: dict[int, tuple[BodyRig, Tensor]] = {}  # id(rig) -> (rig, its garment_basis), for the silhouettes' offsets


def garment_offsets(rig: BodyRig, garment: Tensor | np.ndarray | None) -> Tensor | None:
    """[V, 3] rest offsets of the clothing allowance `garment` [R] (metres per region); None for None."""
    if garment is None:
        return None
    held = _BASES.get(id(rig))
    if held is None or held[0] is not rig:
        _BASES.clear()  # one rig at a time (the capture assistant's)
        held = _BASES[id(rig)] = (rig, garment_basis(rig))
    basis = held[1]
    return basis @ torch.as_tensor(garment).to(basis)
