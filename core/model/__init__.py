"""The LCA model: image encoder, geometry tokens, multimodal transformer, canonical and pose heads."""
