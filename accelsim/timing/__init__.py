"""Timing: the SimPy engine that plays a lowered program on the accelerator (DESIGN.md section 5)."""
