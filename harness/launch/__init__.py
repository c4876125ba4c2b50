"""Cluster launch: Slurm job scripts, the rank environment from Slurm, preemption, hostfiles."""
