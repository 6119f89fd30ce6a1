"""The paper's loose-garment deformer: learnable skinning weights W' = W(n) + H_skin(T^node) at two levels.

Coarse nodes spread over the body and fine nodes over the garment-bearing body (everything but the face) read
their geometry token T^node (the fusion transformer's feature at the node's anchor) and an MLP H_skin maps it to a
correction of the template's skinning weights over the J bones. Each anchor blends the corrections of its nearest
nodes (the fine level gated by how much of the anchor is garment) and is skinned with the corrected weights, so a
skirt can follow both legs instead of the one its template vertex was bound to. The correction depends on the
identity, not on the pose: it is computed once per avatar. A post-training extension (`deformer.kind: skinning`,
configs/model/base-loose.yaml); its last layer starts at zero, so a model that gains it computes what it computed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.body.lbs import polar_rotation
from core.model.config import DeformerConfig
from core.model.deformer import register_node_graph
from core.model.skinning import matrix_to_quat
from core.model.tokens import Anchors


def corrected_weights(
    weights: Tensor,  # [A, J] template skinning weights of the anchors (rows sum to 1)
    delta: Tensor,  # [A, J] correction
) -> Tensor:
    """W' = W + delta, kept a convex combination: negative weights clipped, rows renormalised. [A, J]"""
    w = (weights + delta).clamp_min(0.0)
    return w / w.sum(-1, keepdim=True).clamp_min(1e-8)


def correction_transforms(
    weights: Tensor,  # [A, J] template weights
    corrected: Tensor,  # [A, J] corrected weights
    T_bone: Tensor,  # [J, 4, 4] skinning transforms of the frame
) -> Tensor:
    """The transform [A, 4, 4] that takes a point skinned with `weights` to where `corrected` would skin it:
    (sum_j W'_j T_j) (sum_j W_j T_j)^-1. The identity where the two agree."""
    M = torch.einsum("aj,jxy->axy", weights, T_bone)
    M_new = torch.einsum("aj,jxy->axy", corrected, T_bone)
    return M_new @ torch.linalg.inv_ex(M).inverse  # no error check: nothing here waits for the device


class SkinningCorrection(nn.Module):
    """H_skin at two levels of nodes; `node_deltas` runs once per identity, `apply` once per frame."""

    def __init__(self, cfg: DeformerConfig, anchors: Anchors, dim: int, num_joints: int) -> None:
        super().__init__()
        self.cfg = cfg
        register_node_graph(self, cfg, anchors)
        self.level_embed = nn.Parameter(torch.zeros(2, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, num_joints))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def node_deltas(self, feats: Tensor) -> Tensor:
        """Geometry features [..., A, D] -> H_skin(T^node) [..., Nn, J], bounded to +-max_weight_delta."""
        t = feats[..., self.node_anchor, :] + self.level_embed[self.level]
        return self.cfg.max_weight_delta * torch.tanh(self.mlp(t))

    def anchor_deltas(
        self,
        nodes: Tensor,  # [Nn, J] one identity's node corrections
        garment: Tensor,  # [A] garment share of each anchor (gates the fine level)
    ) -> Tensor:
        """Each anchor's blend of its coarse nodes' corrections plus (for garment) its fine nodes'. [A, J]"""
        coarse = (nodes[self.coarse_idx] * self.coarse_w[..., None]).sum(1)
        fine = (nodes[self.fine_idx] * self.fine_w[..., None]).sum(1)
        return coarse + garment[:, None] * fine

    def apply(
        self,
        means: Tensor,  # [A, K, 3] posed Gaussian centres (template skinning)
        quats: Tensor,  # [A, K, 4] posed rotations (wxyz)
        weights: Tensor,  # [A, J] template weights of the anchors
        delta: Tensor,  # [A, J] the anchors' corrections (strength applied)
        T_bone: Tensor,  # [J, 4, 4] this frame's skinning transforms
    ) -> tuple[Tensor, Tensor]:
        """Centres and rotations re-skinned with the corrected weights."""
        from core.model.skinning import quat_mul

        fix = correction_transforms(weights, corrected_weights(weights, delta), T_bone)  # [A, 4, 4]
        moved = (fix[:, None, :3, :3] @ means[..., None])[..., 0] + fix[:, None, :3, 3]
        q = matrix_to_quat(polar_rotation(fix[:, :3, :3]))  # [A, 4]
        return moved, quat_mul(q[:, None, :].expand_as(quats), quats)

    def regularisers(self, nodes: Tensor) -> dict[str, Tensor]:
        """L1 sparsity of the node corrections and their smoothness over each level's node graph ('arap')."""
        i, j = self.edges[:, 0], self.edges[:, 1]
        return {"sparsity": nodes.abs().mean(), "arap": (nodes[i] - nodes[j]).pow(2).sum(-1).mean()}
