"""`python main.py body`: list bones, expressions and parts; bake, check and render the body asset."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def add_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("--backend", choices=("baked", "anny", "smplx"), default="baked", help="which body model")
    p.add_argument("--smplx-path", default=None, help="folder with SMPLX_NEUTRAL.npz (or set LCA_SMPLX_DIR)")
    p.add_argument("--list-bones", action="store_true", help="print bone index, name and parent")
    p.add_argument("--list-expressions", action="store_true", help="print the expression names")
    p.add_argument("--list-parts", action="store_true", help="print each part label and its vertex count")
    p.add_argument("--bake", metavar="OUT", help="rebuild the baked asset from anny into OUT")
    p.add_argument("--rank", type=int, default=None, help="phenotype PCA rank for --bake")
    p.add_argument("--check", action="store_true", help="compare the baked body with live anny on random poses")
    p.add_argument("--render-parts", metavar="PNG", help="render front/side/back views coloured by part")

    def run(args: argparse.Namespace) -> int:
        if args.bake:
            from core.body.asset import save_body_asset
            from core.body.bake import DEFAULT_RANK, bake_body_asset

            save_body_asset(bake_body_asset(rank=args.rank or DEFAULT_RANK), args.bake)
            log.info("wrote %s", args.bake)
        if args.check:
            code = _check()
            if code:
                return code
        needs_model = args.list_bones or args.list_expressions or args.list_parts or args.render_parts
        if not needs_model:
            if not (args.bake or args.check):
                print(
                    "nothing to do: pass --list-bones, --list-expressions, --list-parts, --bake, --check or --render-parts"
                )
            return 0
        from core.body.model import BodyModel

        try:
            body = BodyModel(args.backend, smplx_path=args.smplx_path)
        except (FileNotFoundError, ImportError) as e:
            log.error("%s", e)
            return 2
        if args.list_bones:
            for i, (name, parent) in enumerate(zip(body.bone_names, body.parents, strict=True)):
                print(f"{i:4d}  {name:20s} parent {parent}")
        if args.list_expressions:
            for i, name in enumerate(body.expression_names):
                print(f"{i:4d}  {name}")
        if args.list_parts:
            import torch

            counts = torch.bincount(body.part_labels, minlength=len(body.part_names))
            for name, c in zip(body.part_names, counts.tolist(), strict=True):
                print(f"{name:8s} {c:6d} vertices")
        if args.render_parts:
            from core.body.render import render_parts_png

            out = body(body.neutral_params(1))
            render_parts_png(out.vertices[0], body.faces, out.part_labels, args.render_parts)
            log.info("wrote %s", args.render_parts)
        return 0

    return run


def _check(batch: int = 4, seed: int = 0) -> int:
    """Baked vs live anny on random poses, expressions and gaze at the default phenotype; prints the errors."""
    import torch

    from core.body.model import BodyModel

    anny_body = BodyModel("anny")
    results = {}
    for dtype in (torch.float64, torch.float32):
        baked = BodyModel("baked", dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        p = anny_body.neutral_params(batch)
        p = p.with_(
            rotations=torch.randn(batch, p.rotations.shape[1], 3, generator=g, dtype=torch.float64) * 0.4,
            expression=torch.rand(p.expression.shape, generator=g, dtype=torch.float64),
            gaze=(torch.rand(batch, 2, generator=g, dtype=torch.float64) - 0.5) * 0.6,
        )
        want, got = anny_body(p), baked(p.to(dtype))
        results[str(dtype)] = float((got.vertices.double() - want.vertices).abs().max())
    ok = all(v < 1e-5 for v in results.values())
    print(f"max |baked - anny| vertex error (m): {results} -> {'OK' if ok else 'FAIL (> 1e-5)'}")
    return 0 if ok else 1
