"""Body models (anny default, SMPL-X optional), linear blend skinning, pose and expression spaces."""
