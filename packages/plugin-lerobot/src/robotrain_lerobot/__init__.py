"""LeRobot behavioral-cloning workload for robotrain."""
