"""Per-vertex body part labels: the dominant skinning bone picks the region, geometry splits the head.

Labels are indices into BODY_PART_NAMES. They are baked into the asset once; the rules live here so the
bake and the SMPL-X backend label their meshes the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

BODY_PART_NAMES: tuple[str, ...] = ("head", "face", "hair", "torso", "arms", "hands", "legs", "feet")


def region_of_bone(name: str) -> str:
    """Coarse region of a bone from its name (anny and SMPL-X names); the head is split later by geometry."""
    n = name.lower()
    if any(k in n for k in ("finger", "metacarpal", "wrist", "thumb", "index", "middle", "ring", "pinky")):
        return "hands"
    if any(k in n for k in ("foot", "toe", "ankle")):
        return "feet"
    if any(k in n for k in ("upperleg", "lowerleg", "knee", "hip", "thigh", "calf")):
        return "legs"
    if any(k in n for k in ("shoulder", "upperarm", "lowerarm", "elbow", "forearm")):
        return "arms"
    if any(k in n for k in ("head", "eye", "jaw", "neck03", "neck02", "tongue")):
        return "head"
    return "torso"


def label_vertices(
    vertices: Tensor,  # [V, 3] rest vertices in the project frame (y up, facing +z)
    dominant_bone: Tensor,  # [V] index of each vertex's largest skinning weight
    bone_names: Sequence[str],  # [J]
    eye_centre: Tensor,  # [3] midpoint of the two eyes
) -> Tensor:
    """Part label per vertex -> [V] int64 index into BODY_PART_NAMES.

    Head vertices are split by position relative to the eyes: the face is the front of the head below the
    hairline (within the cheekbones' width); the hair region is the scalp above the hairline and the back of
    the head down to the nape; the rest (ears, sides, jaw underside) stays "head".
    """
    regions = [region_of_bone(n) for n in bone_names]
    bone_part = torch.tensor([BODY_PART_NAMES.index(r) for r in regions], dtype=torch.int64)
    labels = bone_part[dominant_bone.long()]
    head = labels == BODY_PART_NAMES.index("head")
    rel = vertices - eye_centre  # [V, 3]
    top = rel[head, 1].max()
    hairline = 0.42 * top  # forehead: about 40% of the eye-to-crown height
    front = rel[:, 2] > -0.045  # in front of the ears
    face = head & front & (rel[:, 1] < hairline) & (rel[:, 0].abs() < 0.068) & (rel[:, 1] > -0.16)
    back_of_head = rel[:, 2] < -0.075
    hair = head & ~face & ((rel[:, 1] >= hairline) | (back_of_head & (rel[:, 1] > -0.055)))
    labels = labels.clone()
    labels[face] = BODY_PART_NAMES.index("face")
    labels[hair] = BODY_PART_NAMES.index("hair")
    return labels
