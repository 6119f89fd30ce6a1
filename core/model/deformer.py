"""Two-level node deformer: pose-driven rigid motions of coarse body nodes and fine garment nodes, blended
onto the Gaussians in the canonical frame before skinning, with ARAP and L1-sparsity terms for training."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.model.config import DeformerConfig
from core.model.heads import ConditionedMLP, PoseEncoder
from core.model.skinning import axis_angle_to_matrix
from core.model.tokens import Anchors, farthest_point_sampling
from core.raster.types import PART_NAMES

GARMENT_PARTS = (PART_NAMES.index("upper_garment"), PART_NAMES.index("lower_garment"))
# The same parts as a slice of the part axis (they are neighbours): a view, where a list index is a host-to-device copy
GARMENT_SLICE = slice(min(GARMENT_PARTS), max(GARMENT_PARTS) + 1)
assert GARMENT_SLICE.stop - GARMENT_SLICE.start == len(GARMENT_PARTS), "the garment parts must be neighbours"


@dataclass(frozen=True)
class NodeMotion:
    rotvec: Tensor  # [Nn, 3] axis-angle per node (coarse nodes first, then fine)
    translation: Tensor  # [Nn, 3] metres

    @functools.cached_property
    def rotation(self) -> Tensor:  # [Nn, 3, 3], computed once for the displacement and the regularisers
        return axis_angle_to_matrix(self.rotvec)


def knn_binding(points: Tensor, nodes: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k nearest nodes [P, k] of each point and normalised Gaussian weights [P, k] (width = median distance)."""
    k = min(k, nodes.shape[0])
    d2 = torch.cdist(points, nodes).pow(2)  # [P, Nn]
    dist, idx = d2.topk(k, dim=-1, largest=False)
    sigma2 = dist[:, -1:].median().clamp_min(1e-8)
    w = torch.exp(-dist / sigma2)
    return idx, w / w.sum(-1, keepdim=True).clamp_min(1e-12)


def blend_node_motion(
    points: Tensor,  # [A, K, 3] canonical points, grouped by anchor
    node_pos: Tensor,  # [Nn, 3] rest positions of the nodes
    R: Tensor,  # [Nn, 3, 3]
    t: Tensor,  # [Nn, 3]
    idx: Tensor,  # [A, k] nodes bound to each anchor
    w: Tensor,  # [A, k] weights
) -> Tensor:
    """Displacement [A, K, 3] of each point under the weighted rigid motions of its anchor's nodes."""
    n = node_pos[idx]  # [A, k, 3]
    rel = points[:, :, None, :] - n[:, None]  # [A, K, k, 3]
    moved = (R[idx][:, None] @ rel[..., None])[..., 0] + n[:, None] + t[idx][:, None]  # [A, K, k, 3]
    return ((moved - points[:, :, None, :]) * w[:, None, :, None]).sum(-2)


def arap_energy(node_pos: Tensor, R: Tensor, t: Tensor, edges: Tensor) -> Tensor:
    """As-rigid-as-possible: mean || (x'_j - x'_i) - R_i (p_j - p_i) ||^2 over directed edges [E, 2]."""
    i, j = edges[:, 0], edges[:, 1]
    rest = node_pos[j] - node_pos[i]
    posed = rest + t[j] - t[i]
    return (posed - (R[i] @ rest[..., None])[..., 0]).pow(2).sum(-1).mean()


def sparsity_l1(motion: NodeMotion, max_translation: float) -> Tensor:
    """L1 sparsity of node corrections: most nodes should not need to move."""
    return motion.rotvec.abs().mean() + motion.translation.abs().mean() / max(max_translation, 1e-6)


def register_node_graph(module: nn.Module, cfg: DeformerConfig, anchors: Anchors) -> Tensor:
    """Two levels of deformation nodes on `module`: coarse nodes spread over the body, fine nodes over the
    garment-bearing body (everything but the face), each anchor bound to its nearest nodes of each level, and a
    k-nearest-neighbour graph within each level. Registers node_anchor [Nn], level [Nn], coarse/fine idx and
    weights [A, k], edges [E, 2] and sets num_coarse; returns the nodes' anchor indices [Nn]."""
    pos = anchors.positions.double()
    coarse = farthest_point_sampling(pos, cfg.coarse_nodes, start=0)
    body = torch.nonzero(anchors.parts != PART_NAMES.index("face"))[:, 0]
    body = body if body.numel() >= cfg.fine_nodes else torch.arange(pos.shape[0])
    fine = body[farthest_point_sampling(pos[body], min(cfg.fine_nodes, body.numel()), start=0)]
    nodes = torch.cat([coarse, fine])
    module.num_coarse = coarse.numel()
    module.register_buffer("node_anchor", nodes, persistent=False)  # [Nn] anchor index of each node
    module.register_buffer("level", torch.cat([torch.zeros_like(coarse), torch.ones_like(fine)]), persistent=False)
    c_idx, c_w = knn_binding(pos, pos[coarse], cfg.neighbours)
    f_idx, f_w = knn_binding(pos, pos[fine], cfg.neighbours)
    module.register_buffer("coarse_idx", c_idx, persistent=False)  # [A, k]
    module.register_buffer("coarse_w", c_w.float(), persistent=False)
    module.register_buffer("fine_idx", f_idx + module.num_coarse, persistent=False)
    module.register_buffer("fine_w", f_w.float(), persistent=False)
    edges = []
    for lvl_nodes, offset in ((coarse, 0), (fine, module.num_coarse)):
        g = min(cfg.graph_neighbours + 1, lvl_nodes.numel())
        nn_idx = torch.cdist(pos[lvl_nodes], pos[lvl_nodes]).topk(g, largest=False).indices[:, 1:]  # [n, g-1]
        src = torch.arange(lvl_nodes.numel())[:, None].expand_as(nn_idx)
        edges.append(torch.stack([src.flatten(), nn_idx.flatten()], -1) + offset)
    module.register_buffer("edges", torch.cat(edges), persistent=False)  # [E, 2] node graph of each level
    return nodes


class NodeDeformer(nn.Module):
    """Coarse nodes spread over the body, fine nodes over the garment-bearing body (everything but the face)."""

    def __init__(self, cfg: DeformerConfig, anchors: Anchors, dim: int, num_joints: int, num_expressions: int) -> None:
        super().__init__()
        self.cfg = cfg
        nodes = register_node_graph(self, cfg, anchors)
        self.register_buffer("node_weights", anchors.weights[nodes].float().clone(), persistent=False)
        self.pose = PoseEncoder(num_joints, num_expressions, cfg.hidden)
        self.level_embed = nn.Parameter(torch.zeros(2, cfg.hidden))
        self.mlp = ConditionedMLP(dim, cfg.hidden, 6, zero_last=True)

    def project(self, features: Tensor) -> Tensor:
        """Geometry features [..., A, D] -> cached node inputs [..., Nn, h]."""
        return self.mlp.in_proj(features[..., self.node_anchor, :]) + self.level_embed[self.level]

    def motion(self, proj: Tensor, zero: Tensor, code: Tensor, expression: Tensor, gaze: Tensor) -> NodeMotion:
        """proj [Nn, h], zero [Nn, 6] (raw output at the zero pose) -> bounded node motion, zero at rest."""
        raw = self.mlp(proj, self.pose(code, expression, gaze, self.node_weights))
        return self.bound(raw, zero)

    def bound(self, raw: Tensor, zero: Tensor) -> NodeMotion:
        def b(x: Tensor) -> tuple[Tensor, Tensor]:
            return 0.5 * torch.tanh(x[..., :3]), self.cfg.max_translation * torch.tanh(x[..., 3:])

        (r, t), (r0, t0) = b(raw), b(zero)
        return NodeMotion(rotvec=r - r0, translation=t - t0)

    def displace(
        self,
        points: Tensor,  # [A, K, 3] canonical points
        node_pos: Tensor,  # [Nn, 3] node rest positions of this identity
        motion: NodeMotion,
        garment: Tensor,  # [A, K] probability that a Gaussian belongs to a garment (gates the fine level)
        strength: Tensor,  # [A, K] per-Gaussian deformer strength (loosen)
    ) -> Tensor:
        """Corrected canonical points [A, K, 3]."""
        R = motion.rotation
        t = motion.translation
        d_coarse = blend_node_motion(points, node_pos, R, t, self.coarse_idx, self.coarse_w)
        d_fine = blend_node_motion(points, node_pos, R, t, self.fine_idx, self.fine_w)
        return points + strength[..., None] * (d_coarse + garment[..., None] * d_fine)

    def regularisers(self, node_pos: Tensor, motion: NodeMotion) -> dict[str, Tensor]:
        """{'arap': ..., 'sparsity': ...} for the training loss."""
        R = motion.rotation
        return {
            "arap": arap_energy(node_pos, R, motion.translation, self.edges),
            "sparsity": sparsity_l1(motion, self.cfg.max_translation),
        }
