"""NVIDIA OSMO platform for robotrain."""
