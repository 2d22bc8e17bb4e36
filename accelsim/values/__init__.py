"""Values: the bit-exact numbers of a lowered program, computed by the kernels (DESIGN.md section 4)."""
