"""Autograd Functions behind the Tensor's operators and methods."""
